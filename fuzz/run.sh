#!/usr/bin/env bash
# Runs every fuzz target for SECONDS_PER_TARGET seconds (default 20) after building the seed
# corpora; fails when any target crashes, naming the reproducer. Needs the nightly toolchain;
# installs the pinned cargo-fuzz when it is missing. See fuzz/README.md.
#
#   bash fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# FUZZ_RUNS=N instead runs each target for N inputs from a fixed seed (-seed=1), so that a run
# on the same tree and seeds tries the same inputs: what .ci/run does, so that a change fails
# CI for what it broke, never for what a fuzzer happened to find that day.
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-20}
shift || true
CARGO_FUZZ_VERSION=0.13.2
start=$(date +%s)
# Release builds with overflow checks and debug assertions; no sanitizer: the crate's unsafe
# code is three thin calls (zlib-rs's zlib interface over slices borrowed for each call, in
# src/ingest/gzip.rs; glibc's mallopt; an SSE2 load of sixteen borrowed bytes in
# src/ingest/json_text/cursor.rs), and AddressSanitizer would cost half the speed.
FLAGS="-O -a -s none"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal
fi
if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $CARGO_FUZZ_VERSION" ]; then
  echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

echo "== seed corpora"
bash seeds.sh
echo "== building the targets"
cargo +nightly fuzz build $FLAGS

each="${seconds}s"
if [ -n "${FUZZ_RUNS:-}" ]; then each="$FUZZ_RUNS inputs from seed 1"; fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
failed=()
reproducers=()
for target in "${targets[@]}"; do
  echo "== $target: $each"
  mkdir -p "corpus/$target" "artifacts/$target"
  dict=()
  if [ -f "$target.dict" ]; then dict=("-dict=$target.dict"); fi
  # -max_len: the seeds are at most 64 KiB; -timeout: a slow input is a finding too.
  if [ -n "${FUZZ_RUNS:-}" ]; then
    budget=(-runs="$FUZZ_RUNS" -seed=1)
  else
    budget=(-max_total_time="$seconds")
  fi
  if ! cargo +nightly fuzz run $FLAGS "$target" "corpus/$target" -- \
      "${budget[@]}" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 "${dict[@]}" 2>"artifacts/$target.log"; then
    # The panic and its place, without libFuzzer's dump of the input's bytes.
    grep -v -E '^\s+(\[|#[0-9])' "artifacts/$target.log" | grep -A 30 -m 1 -E 'panicked|ERROR: libFuzzer' | head -n 40 || true
    failed+=("$target")
    reproducers+=($(grep -o 'Test unit written to [^ ]*' "artifacts/$target.log" | awk '{print $5}' || true))
  fi
  grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|Done)' "artifacts/$target.log" || true
done
echo "== fuzz/run.sh: ${#targets[@]} targets, $each each, $(( $(date +%s) - start ))s in all"
if [ ${#failed[@]} -gt 0 ]; then
  echo "== FAILED: ${failed[*]}"
  for f in "${reproducers[@]}"; do
    echo "reproducer: $f (replay: cd fuzz && cargo +nightly fuzz run $FLAGS $(basename "$(dirname "$f")") $f)"
  done
  exit 1
fi
