#!/usr/bin/env bash
# The benchmark of `abortaudit scan`: the audit, its floors and the usual alternatives, side by
# side in one run, on the same Collector-shaped file with a warm page cache. See bench/README.md.
#
#   bash bench/run.sh SIZE [options]        SIZE: 10MB, 100MB, 1GB (decimal), 256MiB, ...
#
#   --seed N        generator seed (default 42)
#   --aborted P     turns aborted per thousand by the generator (default 100; 500: half)
#   --genai         the GenAI-shaped export (conversation id on every span, message content)
#   --reps N        runs of each command, the best is reported (default 3)
#   --quick         one run of each (smoke test)
#   --threads N     threads for parse_only, abortaudit and DuckDB (default 2)
#   --no-jq         skip the jq row
#   --no-duckdb     skip the DuckDB rows (and their venv)
#   --no-compressed skip the compressed rows (zstd -3, gzip -1, multi-frame zstd, their floors)
#   --strict        exit 3 when a performance target is missed
#   --keep          keep the work directory (outputs, /usr/bin/time reports)
#   --discard       delete the generated input (and its compressed copies) afterwards: the
#                   10 GB run, which is generated on the fly rather than kept
#
# Environment: BENCH_DIR (generated files and work directories; default /tmp/abortaudit-bench),
# BENCH_RESULTS (default bench/results/latest.json).
#
# Exit status: 0 all checks passed; 1 a correctness check failed (outputs that differ across
# runs or thread counts, jq vs DuckDB, either vs the generator's truth, abortaudit's findings vs
# the truth); 2 usage or setup error; 3 (--strict) a performance target was missed.
set -euo pipefail

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"
  exit "${1:-2}"
}

cd "$(dirname "$0")/.."
ROOT=$(pwd)

[ $# -ge 1 ] || usage 2
case $1 in -h | --help) usage 0 ;; -*) usage 2 ;; esac
SIZE=$1
shift
SEED=42
ABORTED=100
GENAI=0
DISCARD=0
REPS=3
THREADS=2
RUN_JQ=1
RUN_DUCKDB=1
RUN_COMPRESSED=1
STRICT=0
KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --seed) SEED=$2; shift 2 ;;
    --aborted) ABORTED=$2; shift 2 ;;
    --genai) GENAI=1; shift ;;
    --discard) DISCARD=1; shift ;;
    --reps) REPS=$2; shift 2 ;;
    --quick) REPS=1; shift ;;
    --threads) THREADS=$2; shift 2 ;;
    --no-jq) RUN_JQ=0; shift ;;
    --no-duckdb) RUN_DUCKDB=0; shift ;;
    --no-compressed) RUN_COMPRESSED=0; shift ;;
    --strict) STRICT=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage 0 ;;
    *) echo "run.sh: unknown option $1" >&2; usage 2 ;;
  esac
done

BENCH_DIR=${BENCH_DIR:-/tmp/abortaudit-bench}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/latest.json}
mkdir -p "$BENCH_DIR"

# (Captured first: `grep -q` would stop reading early, and with pipefail the pipe's SIGPIPE
# would read as a missing tool.)
time_report=$(/usr/bin/time -v true 2>&1 || true)
if [[ $time_report != *"Maximum resident set size"* ]]; then
  echo "run.sh: GNU time is needed at /usr/bin/time (apt-get install time)" >&2
  exit 2
fi
if [ "$RUN_COMPRESSED" = 1 ]; then
  for tool in zstd gzip; do
    if ! command -v "$tool" >/dev/null; then
      echo "run.sh: $tool is not installed (apt-get install $tool), or pass --no-compressed" >&2
      exit 2
    fi
  done
fi
if [ "$RUN_JQ" = 1 ] && ! command -v jq >/dev/null; then
  echo "run.sh: jq is not installed (apt-get install jq), or pass --no-jq" >&2
  exit 2
fi

echo "== building abortaudit and the examples (release)"
cargo build --release --quiet --bin abortaudit --examples
# What was built (src/ may change while the benchmark runs).
BUILT_COMMIT=$(git rev-parse HEAD 2>/dev/null || echo unknown)
BUILT_DIRTY=$(GIT_OPTIONAL_LOCKS=0 git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null | wc -l)
BIN=$ROOT/target/release/abortaudit
GEN=$ROOT/target/release/examples/gen_collector_otlp
PARSE=$ROOT/target/release/examples/parse_only
INFLATE=$ROOT/target/release/examples/inflate_only

# The generated file is cached by size, seed and the generator's source.
GEN_HASH=$(sha256sum examples/gen_collector_otlp.rs | cut -c1-12)
RATE=
[ "$ABORTED" = 100 ] || RATE=-aborted$ABORTED
SHAPE=
GEN_SHAPE=()
[ "$GENAI" = 0 ] || { SHAPE=-genai; GEN_SHAPE=(--genai); }
DATA=$BENCH_DIR/collector-$SIZE-seed$SEED$RATE$SHAPE-$GEN_HASH.jsonl
if [ ! -s "$DATA" ] || [ ! -s "$DATA.truth.json" ]; then
  echo "== generating $DATA"
  part=$(mktemp -d "$BENCH_DIR/gen.XXXXXX")
  "$GEN" --size "$SIZE" --seed "$SEED" --aborted "$ABORTED" "${GEN_SHAPE[@]}" --out "$part/$(basename "$DATA")"
  mv "$part/$(basename "$DATA").truth.json" "$DATA.truth.json"
  mv "$part/$(basename "$DATA")" "$DATA"
  rmdir "$part"
else
  echo "== using $DATA (cached)"
fi

# The same file compressed, cached beside it: `zstd -3` (one frame, as `zstd` writes it),
# `gzip -1` (as rotated logs are), and many zstd frames (`pzstd`, as `pzstd` and the Collector's
# per-message frames are; skipped when pzstd is not installed).
ZST=$DATA.zst
GZ=$DATA.gz
FRAMES=
compress_once() { # OUT COMMAND...: COMMAND < DATA > OUT, unless OUT is there
  local out=$1
  shift
  if [ ! -s "$out" ]; then
    echo "== compressing: $* > $out"
    "$@" <"$DATA" >"$out.part"
    mv "$out.part" "$out"
  fi
}
if [ "$RUN_COMPRESSED" = 1 ]; then
  compress_once "$ZST" zstd -3 -q -c
  compress_once "$GZ" gzip -1 -c
  if command -v pzstd >/dev/null; then
    FRAMES=$DATA.frames.zst
    compress_once "$FRAMES" pzstd -3 -q -p "$THREADS" -c
  else
    echo "== pzstd is not installed: no multi-frame zstd row"
  fi
fi

VENV=$ROOT/bench/.venv
DUCKDB_VERSION=
if [ "$RUN_DUCKDB" = 1 ]; then
  want=$(sed -n 's/^duckdb==\([^ ;#]*\).*/\1/p' bench/requirements.txt)
  have=$("$VENV/bin/python" -c 'import duckdb; print(duckdb.__version__)' 2>/dev/null || true)
  if [ "$have" != "$want" ]; then
    echo "== installing duckdb==$want into bench/.venv"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r bench/requirements.txt
  fi
  DUCKDB_VERSION=$("$VENV/bin/python" -c 'import duckdb; print(duckdb.__version__)')
fi

WORK=$(mktemp -d "$BENCH_DIR/run.XXXXXX")
cleanup() { [ "$KEEP" = 1 ] || rm -rf "$WORK"; }
trap cleanup EXIT

echo "== warming the page cache"
cat "$DATA" >/dev/null
if [ "$RUN_COMPRESSED" = 1 ]; then cat "$ZST" "$GZ" ${FRAMES:+"$FRAMES"} >/dev/null; fi

# measure KEY REP OUT COMMAND...: one run under /usr/bin/time -v, stdout to OUT.
measure() {
  local key=$1 rep=$2 out=$3
  shift 3
  local tfile=$WORK/$key.$rep.time rc=0 t0 t1
  t0=$(date +%s%N)
  /usr/bin/time -v -o "$tfile" "$@" >"$out" 2>"$WORK/$key.$rep.stderr" || rc=$?
  t1=$(date +%s%N)
  printf '{"key":"%s","rep":%d,"wall_ns":%d,"rc":%d,"out":"%s","time_file":"%s","stderr":"%s"}\n' \
    "$key" "$rep" $((t1 - t0)) "$rc" "$out" "$tfile" "$WORK/$key.$rep.stderr" >>"$WORK/samples.jsonl"
  printf '   %-14s %8.3f s  (exit %d)\n' "$key" "$(echo "$t0 $t1" | awk '{print ($2-$1)/1e9}')" "$rc"
  if [ "$rc" -gt 1 ] || { [ "$rc" = 1 ] && [ "${key#abortaudit}" = "$key" ]; }; then
    echo "   $key failed (exit $rc); its stderr:" >&2
    tail -n 20 "$WORK/$key.$rep.stderr" >&2
  fi
}

for rep in $(seq 1 "$REPS"); do
  echo "== run $rep/$REPS"
  measure cat "$rep" /dev/null cat "$DATA"
  measure parse_only "$rep" "$WORK/parse_only.$rep.out" env RAYON_NUM_THREADS="$THREADS" "$PARSE" "$DATA"
  measure abortaudit "$rep" "$WORK/abortaudit.$rep.json" \
    env RAYON_NUM_THREADS="$THREADS" "$BIN" scan --format json "$DATA"
  measure abortaudit_1t "$rep" "$WORK/abortaudit_1t.$rep.json" \
    env RAYON_NUM_THREADS=1 "$BIN" scan --format json "$DATA"
  if [ "$RUN_COMPRESSED" = 1 ]; then
    measure zstd_dc "$rep" /dev/null zstd -dc "$ZST"
    measure inflate_zstd "$rep" "$WORK/inflate_zstd.$rep.out" "$INFLATE" "$ZST"
    measure abortaudit_zstd "$rep" "$WORK/abortaudit_zstd.$rep.json" \
      env RAYON_NUM_THREADS="$THREADS" "$BIN" scan --format json "$ZST"
    measure abortaudit_zstd_1t "$rep" "$WORK/abortaudit_zstd_1t.$rep.json" \
      env RAYON_NUM_THREADS=1 "$BIN" scan --format json "$ZST"
    measure gzip_dc "$rep" /dev/null gzip -dc "$GZ"
    measure inflate_gzip "$rep" "$WORK/inflate_gzip.$rep.out" "$INFLATE" "$GZ"
    measure abortaudit_gzip "$rep" "$WORK/abortaudit_gzip.$rep.json" \
      env RAYON_NUM_THREADS="$THREADS" "$BIN" scan --format json "$GZ"
    measure abortaudit_gzip_1t "$rep" "$WORK/abortaudit_gzip_1t.$rep.json" \
      env RAYON_NUM_THREADS=1 "$BIN" scan --format json "$GZ"
    if [ -n "$FRAMES" ]; then
      measure zstd_dc_frames "$rep" /dev/null zstd -dc "$FRAMES"
      measure abortaudit_frames "$rep" "$WORK/abortaudit_frames.$rep.json" \
        env RAYON_NUM_THREADS="$THREADS" "$BIN" scan --format json "$FRAMES"
      measure abortaudit_frames_1t "$rep" "$WORK/abortaudit_frames_1t.$rep.json" \
        env RAYON_NUM_THREADS=1 "$BIN" scan --format json "$FRAMES"
    fi
  fi
  if [ "$RUN_JQ" = 1 ]; then
    measure jq "$rep" "$WORK/jq.$rep.json" jq -c -n -f bench/late_writes.jq "$DATA"
  fi
  if [ "$RUN_DUCKDB" = 1 ]; then
    measure duckdb "$rep" "$WORK/duckdb.$rep.json" \
      env DUCKDB_THREADS="$THREADS" "$VENV/bin/python" bench/late_writes.py "$DATA"
    measure duckdb_auto "$rep" "$WORK/duckdb_auto.$rep.json" \
      env DUCKDB_THREADS="$THREADS" "$VENV/bin/python" bench/late_writes.py --auto-schema "$DATA"
  fi
done

# What was measured, on what.
META_COMMIT=$BUILT_COMMIT \
META_DIRTY=$BUILT_DIRTY \
META_DATE=$(date -u +%Y-%m-%dT%H:%M:%SZ) \
META_NPROC=$(nproc) \
META_MEM_KIB=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo) \
META_CPU=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo) \
META_KERNEL=$(uname -sr) \
META_RUSTC=$(rustc --version) \
META_JQ=$([ "$RUN_JQ" = 1 ] && jq --version || true) \
META_DUCKDB=$DUCKDB_VERSION \
META_PYTHON=$(python3 --version 2>&1) \
META_ABORTAUDIT=$("$BIN" --version 2>/dev/null || echo abortaudit) \
META_ABORTED=$ABORTED \
META_GENAI=$GENAI \
META_ZSTD=$([ "$RUN_COMPRESSED" = 1 ] && zstd --version || true) \
META_GZIP=$([ "$RUN_COMPRESSED" = 1 ] && gzip --version | head -n 1 || true) \
META_COMPRESSED=$([ "$RUN_COMPRESSED" = 1 ] && printf '%s\n' "$ZST" "$GZ" $FRAMES || true) \
python3 - "$WORK/meta.json" "$DATA" "$SIZE" "$SEED" "$REPS" "$THREADS" "$RESULTS" "$STRICT" <<'PY'
import json, os, sys
out, data, size, seed, reps, threads, results, strict = sys.argv[1:]
e = os.environ
meta = {
    "date": e["META_DATE"],
    "reps": int(reps),
    "threads": int(threads),
    "strict_targets": strict == "1",
    "results": results,
    "abortaudit": {"commit": e["META_COMMIT"], "dirty": int(e["META_DIRTY"]) > 0, "version": e["META_ABORTAUDIT"]},
    "machine": {
        "nproc": int(e["META_NPROC"]),
        "memory_gib": round(int(e["META_MEM_KIB"]) / 1024 / 1024, 1),
        "cpu": e["META_CPU"],
        "kernel": e["META_KERNEL"],
    },
    "versions": {"rustc": e["META_RUSTC"], "jq": e["META_JQ"] or None,
                 "duckdb": e["META_DUCKDB"] or None, "python": e["META_PYTHON"],
                 "zstd": e["META_ZSTD"] or None, "gzip": e["META_GZIP"] or None},
    "input": {"path": data, "bytes": os.path.getsize(data), "size": size, "seed": int(seed),
              "truth": data + ".truth.json", "aborted_permille": int(e["META_ABORTED"]),
              "genai": e["META_GENAI"] == "1",
              "compressed": {p[len(data) + 1:]: {"path": p, "bytes": os.path.getsize(p)}
                             for p in e["META_COMPRESSED"].split()}},
    "commands": {
        "cat": "cat FILE > /dev/null",
        "parse_only": f"RAYON_NUM_THREADS={threads} target/release/examples/parse_only FILE",
        "abortaudit": f"RAYON_NUM_THREADS={threads} target/release/abortaudit scan --format json FILE",
        "abortaudit_1t": "RAYON_NUM_THREADS=1 target/release/abortaudit scan --format json FILE",
        "zstd_dc": "zstd -dc FILE.zst > /dev/null   (FILE.zst: zstd -3)",
        "abortaudit_zstd": f"RAYON_NUM_THREADS={threads} target/release/abortaudit scan --format json FILE.zst",
        "abortaudit_zstd_1t": "RAYON_NUM_THREADS=1 target/release/abortaudit scan --format json FILE.zst",
        "inflate_zstd": "target/release/examples/inflate_only FILE.zst",
        "gzip_dc": "gzip -dc FILE.gz > /dev/null   (FILE.gz: gzip -1)",
        "inflate_gzip": "target/release/examples/inflate_only FILE.gz",
        "abortaudit_gzip": f"RAYON_NUM_THREADS={threads} target/release/abortaudit scan --format json FILE.gz",
        "abortaudit_gzip_1t": "RAYON_NUM_THREADS=1 target/release/abortaudit scan --format json FILE.gz",
        "zstd_dc_frames": f"zstd -dc FILE.frames.zst > /dev/null   (FILE.frames.zst: pzstd -3 -p {threads})",
        "abortaudit_frames": f"RAYON_NUM_THREADS={threads} target/release/abortaudit scan --format json FILE.frames.zst",
        "abortaudit_frames_1t": "RAYON_NUM_THREADS=1 target/release/abortaudit scan --format json FILE.frames.zst",
        "jq": "jq -c -n -f bench/late_writes.jq FILE",
        "duckdb": f"DUCKDB_THREADS={threads} bench/.venv/bin/python bench/late_writes.py FILE",
        "duckdb_auto": f"DUCKDB_THREADS={threads} bench/.venv/bin/python bench/late_writes.py --auto-schema FILE",
    },
}
with open(out, "w") as f:
    json.dump(meta, f, indent=2)
PY

status=0
python3 bench/report.py "$WORK" || status=$?
if [ "$DISCARD" = 1 ]; then
  rm -f "$DATA" "$DATA.truth.json" "$ZST" "$GZ" $FRAMES
  echo "generated input deleted (--discard): $DATA"
fi
if [ "$KEEP" = 1 ]; then echo "work directory kept: $WORK"; fi
exit "$status"
