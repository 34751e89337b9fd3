#!/usr/bin/env bash
# Start server.py (ClickHouse HTTP interface over the embedded chdb engine) in the background.
#
#   bash tests/clickhouse/start.sh [--port N] [--run-dir DIR] [--data-dir DIR] [-- server.py args...]
#
# Prints the port on stdout once /ping answers. Writes RUN_DIR/server.pid, RUN_DIR/server.port
# and RUN_DIR/server.log (RUN_DIR defaults to $ABORTAUDIT_CH_RUN_DIR or /tmp/abortaudit-clickhouse;
# the data directory defaults to RUN_DIR/data and is kept across restarts: delete it for a
# fresh engine). Port 0 (default) = an ephemeral port. If a server from this RUN_DIR is already
# running, prints its port and exits 0.
# Credentials: ABORTAUDIT_CH_USER (default "default") / ABORTAUDIT_CH_PASSWORD (default empty).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
RUN_DIR="${ABORTAUDIT_CH_RUN_DIR:-/tmp/abortaudit-clickhouse}"
PORT=0
DATA_DIR=""
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT="$2"; shift 2 ;;
    --port=*) PORT="${1#*=}"; shift ;;
    --run-dir) RUN_DIR="$2"; shift 2 ;;
    --run-dir=*) RUN_DIR="${1#*=}"; shift ;;
    --data-dir) DATA_DIR="$2"; shift 2 ;;
    --data-dir=*) DATA_DIR="${1#*=}"; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    *) echo "start.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
DATA_DIR="${DATA_DIR:-$RUN_DIR/data}"
mkdir -p "$RUN_DIR"
PID_FILE="$RUN_DIR/server.pid"
PORT_FILE="$RUN_DIR/server.port"
LOG="$RUN_DIR/server.log"

if [ -f "$PID_FILE" ] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null && [ -f "$PORT_FILE" ]; then
  echo "[clickhouse/start] already running: pid $(cat "$PID_FILE"), port $(cat "$PORT_FILE")" >&2
  cat "$PORT_FILE"
  exit 0
fi
rm -f "$PID_FILE" "$PORT_FILE"

PY="$(bash "$HERE/setup.sh")"
export PYTHONDONTWRITEBYTECODE=1
export TZ="${TZ:-UTC}"
nohup "$PY" "$HERE/server.py" --port "$PORT" --data-dir "$DATA_DIR" \
  --pid-file "$PID_FILE" --port-file "$PORT_FILE" "${EXTRA[@]}" >"$LOG" 2>&1 < /dev/null &
pid=$!

for _ in $(seq 1 600); do  # up to 60 s
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "[clickhouse/start] server exited; log:" >&2
    cat "$LOG" >&2
    exit 1
  fi
  if [ -f "$PORT_FILE" ]; then
    port="$(cat "$PORT_FILE")"
    if curl -fsS --max-time 2 "http://127.0.0.1:$port/ping" >/dev/null 2>&1; then
      echo "[clickhouse/start] pid $pid, http://127.0.0.1:$port (log $LOG)" >&2
      echo "$port"
      exit 0
    fi
  fi
  sleep 0.1
done
echo "[clickhouse/start] not ready after 60 s; stopping pid $pid; log:" >&2
cat "$LOG" >&2
kill "$pid" 2>/dev/null || true
exit 1
