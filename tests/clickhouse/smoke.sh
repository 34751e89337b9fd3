#!/usr/bin/env bash
# Smoke test of the ClickHouse test engine, end to end:
# start server.py, create the exporter's schema, load the shipped fixtures, run a
# parameterised query, show ClickHouse's error format (before and after streaming
# started), then stop the server.
#
#   bash tests/clickhouse/smoke.sh        # needs python3 and curl; creates .venv on first use
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export PYTHONDONTWRITEBYTECODE=1
OWN_RUN_DIR=""
if [ -z "${ABORTAUDIT_CH_RUN_DIR:-}" ]; then
  OWN_RUN_DIR="$(mktemp -d /tmp/abortaudit-ch-smoke.XXXXXX)"  # removed at exit
  export ABORTAUDIT_CH_RUN_DIR="$OWN_RUN_DIR"
fi
export ABORTAUDIT_CH_USER="${ABORTAUDIT_CH_USER:-abortaudit}"
export ABORTAUDIT_CH_PASSWORD="${ABORTAUDIT_CH_PASSWORD:-smoke-secret}"

step() { printf '\n== %s\n' "$*"; }

step "start server.py ($(grep '^chdb-core==' "$HERE/requirements.txt"))"
t0=$(date +%s.%N)
PORT="$(bash "$HERE/start.sh")"
trap 'bash "$HERE/stop.sh"; [ -z "$OWN_RUN_DIR" ] || rm -rf "$OWN_RUN_DIR"' EXIT
URL="http://127.0.0.1:$PORT"
printf 'listening on %s (%.1fs)\n' "$URL" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')"
CURL=(curl -sS -H "X-ClickHouse-User: $ABORTAUDIT_CH_USER" -H "X-ClickHouse-Key: $ABORTAUDIT_CH_PASSWORD")

step "create schema (exporter's current otel_traces + _trace_id_ts + MV, and a Distributed otel_traces_dist)"
python3 "$HERE/schema.py" --url "$URL" --variant current --database otel --drop --distributed

step "load fixtures/scenarios/traces"
python3 "$HERE/load.py" --url "$URL" --database otel

step "parameterised query: SELECT count() FROM otel_traces WHERE ServiceName = {svc:String}"
"${CURL[@]}" "$URL/?database=otel&param_svc=support-agent" \
  --data-binary 'SELECT count() FROM otel_traces WHERE ServiceName = {svc:String}'
"${CURL[@]}" "$URL/?database=otel&default_format=JSONEachRow&param_svc=payments-api" \
  --data-binary 'SELECT ServiceName, SpanKind, StatusCode, count() AS n FROM otel_traces WHERE ServiceName = {svc:String} GROUP BY ALL ORDER BY n DESC'
"${CURL[@]}" "$URL/?database=otel" \
  --data-binary 'SELECT count() FROM otel_traces_dist WHERE TraceId GLOBAL IN (SELECT TraceId FROM otel_traces_dist WHERE SpanKind = '"'"'Server'"'"')'

step "error before any data: HTTP status + X-ClickHouse-Exception-Code + 'Code: N. DB::Exception: ...'"
"${CURL[@]}" -i "$URL/?database=otel" --data-binary 'SELECT no_such_column FROM otel_traces' \
  | grep -E '^(HTTP/|X-ClickHouse-Exception|Code:)' || true

step "wrong password"
curl -sS -i -H "X-ClickHouse-User: $ABORTAUDIT_CH_USER" -H "X-ClickHouse-Key: wrong" "$URL/?query=SELECT%201" \
  | grep -E '^(HTTP/|X-ClickHouse-Exception|Code:)' || true

step "error after streaming started (engine throwIf): HTTP 200, tagged __exception__ frame, body cut"
"${CURL[@]}" -i "$URL/" --data-binary \
  "SELECT throwIf(number = 2000000, 'late failure') FROM numbers(3000000) SETTINGS max_block_size = 65536" \
  -o "$ABORTAUDIT_CH_RUN_DIR/late.out" || echo "(curl exit $?: the chunked body was cut, as ClickHouse 24.11+ does)"
grep -a -E '^(HTTP/|X-ClickHouse-Exception-Tag)' "$ABORTAUDIT_CH_RUN_DIR/late.out"
tail -c 330 "$ABORTAUDIT_CH_RUN_DIR/late.out" | cat -A | tail -4

step "test switch: the next matching streamed response fails after 64 bytes"
curl -sS -X POST "$URL/__test__/fault?after_bytes=64&count=1&match=otel_traces&code=241&message=Memory%20limit%20(total)%20exceeded"
echo
"${CURL[@]}" "$URL/?database=otel&default_format=JSONEachRow" \
  --data-binary 'SELECT SpanId, SpanName FROM otel_traces ORDER BY Timestamp' | cat -A || true
echo

step "stop"
