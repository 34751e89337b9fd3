#!/usr/bin/env bash
# The store benchmark: `abortaudit scan clickhouse://…` (the survey in SQL, only the traces that
# matter come back) against exporting the whole window to an OTLP/JSON Lines file and scanning
# that, side by side, in pairs (A then B, REPS times) on the same engine and data: wall time and
# the bytes each path received from the server. Not part of CI. See bench/README.md.
#
#   bash bench/clickhouse.sh [--spans N] [--reps N] [--keep]
#
#   --spans N   spans to generate and load (default 10000000; generated and loaded only when
#               the table holds fewer)
#   --reps N    pairs of runs (default 3); medians are reported
#   --keep      leave the engine running (its data is kept either way)
#
# Environment: BENCH_CH_DIR (the engine's run and data directory; default /tmp/chtest3, where
# tests/clickhouse/gen_bench.py's data lives), BENCH_DIR (work files; default
# /tmp/abortaudit-ch-bench-work), BENCH_RESULTS (default bench/results/clickhouse.json).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

SPANS=10000000
REPS=3
KEEP=0
while [ $# -gt 0 ]; do
  case $1 in
    --spans) SPANS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "clickhouse.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
CH_DIR=${BENCH_CH_DIR:-/tmp/chtest3}
WORK=${BENCH_DIR:-/tmp/abortaudit-ch-bench-work}
RESULTS=${BENCH_RESULTS:-$ROOT/bench/results/clickhouse.json}
mkdir -p "$WORK" "$(dirname "$RESULTS")"

echo "== build" >&2
cargo build --release --locked >&2
BIN=$ROOT/target/release/abortaudit

echo "== engine ($CH_DIR)" >&2
PORT=$(bash tests/clickhouse/start.sh --run-dir "$CH_DIR" -- --quiet)
stop() { [ "$KEEP" = 1 ] || bash tests/clickhouse/stop.sh --run-dir "$CH_DIR"; }
trap stop EXIT
HTTP=http://127.0.0.1:$PORT
query() { curl -sS --fail-with-body "$HTTP/?database=bench$2" --data-binary "$1"; }

rows=$(query "SELECT count() FROM otel_traces" "" 2>/dev/null || echo 0)
if [ "${rows:-0}" -lt $((SPANS * 9 / 10)) ]; then
  echo "== generate and load $SPANS spans (tests/clickhouse/gen_bench.py)" >&2
  python3 tests/clickhouse/gen_bench.py --url "$HTTP" --spans "$SPANS" --database bench >&2
  rows=$(query "SELECT count() FROM otel_traces" "")
fi
read -r first last < <(query "SELECT toUnixTimestamp64Nano(min(Timestamp)), toUnixTimestamp64Nano(max(Timestamp)) FROM otel_traces FORMAT TSV" "")
rfc3339() { python3 -c "import datetime,sys; n=int(sys.argv[1]); print(datetime.datetime.fromtimestamp(n//10**9, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S')+'.%09dZ'%(n%10**9))" "$1"; }
SINCE=$(rfc3339 "$first")
UNTIL=$(rfc3339 "$last")
GRACE_NS=3600000000000
echo "== $rows spans, window $SINCE .. $UNTIL" >&2

STORE="clickhouse://127.0.0.1:$PORT/bench?table=otel_traces"
# A: the audit where the spans live.
run_a() {
  local start end
  start=$(date +%s.%N)
  ABORTAUDIT_STORE_STATS=1 "$BIN" scan "$STORE" --since "$SINCE" --until "$UNTIL" \
    --format json --exit-zero > "$WORK/a.json" 2> "$WORK/a.err"
  end=$(date +%s.%N)
  A_WALL=$(echo "$end - $start" | bc)
  A_BYTES=$(sed -n 's/.*rows, \([0-9]*\) bytes received.*/\1/p' "$WORK/a.err")
}
# B: the whole window (widened by the same grace) exported as OTLP/JSON Lines, then scanned.
run_b() {
  local start end
  start=$(date +%s.%N)
  B_BYTES=$(curl -sS --fail-with-body -o "$WORK/window.jsonl" -w '%{size_download}' \
    "$HTTP/?database=bench&param_since=$((first - GRACE_NS))&param_until=$((last + GRACE_NS))" \
    --data-binary @bench/clickhouse-export.sql)
  "$BIN" scan "$WORK/window.jsonl" --format json --exit-zero > "$WORK/b.json"
  end=$(date +%s.%N)
  B_WALL=$(echo "$end - $start" | bc)
}

A_WALLS=() B_WALLS=()
for i in $(seq 1 "$REPS"); do
  run_a
  run_b
  echo "pair $i: store ${A_WALL}s ${A_BYTES} B · export+file ${B_WALL}s ${B_BYTES} B" >&2
  A_WALLS+=("$A_WALL") B_WALLS+=("$B_WALL")
done

python3 - "$WORK" "$RESULTS" "$rows" "$SINCE" "$UNTIL" "$A_BYTES" "$B_BYTES" "${A_WALLS[*]}" "${B_WALLS[*]}" <<'EOF'
import json, statistics, sys
work, results, rows, since, until, a_bytes, b_bytes, a_walls, b_walls = sys.argv[1:]
a = json.load(open(f"{work}/a.json")); b = json.load(open(f"{work}/b.json"))
a_walls = [float(x) for x in a_walls.split()]; b_walls = [float(x) for x in b_walls.split()]
ratios = [x / y for x, y in zip(a_walls, b_walls)]
out = {
    "spans": int(rows), "since": since, "until": until,
    "store": {"wall_s": a_walls, "median_wall_s": statistics.median(a_walls), "bytes": int(a_bytes)},
    "export_and_file": {"wall_s": b_walls, "median_wall_s": statistics.median(b_walls), "bytes": int(b_bytes)},
    "wall_ratio_store_over_export_pairwise": ratios,
    "median_wall_ratio": statistics.median(ratios),
    "bytes_ratio_store_over_export": int(a_bytes) / int(b_bytes),
    "findings": {"store": len(a["findings"]), "export_and_file": len(b["findings"]),
                 "identical": a["findings"] == b["findings"]},
    "summary_categories": {"store": a["summary"]["categories"], "export_and_file": b["summary"]["categories"]},
}
json.dump(out, open(results, "w"), indent=2)
print(json.dumps(out, indent=2))
EOF
