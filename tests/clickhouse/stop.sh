#!/usr/bin/env bash
# Stop the server started by start.sh, by the pid in RUN_DIR/server.pid.
#
#   bash tests/clickhouse/stop.sh [--run-dir DIR]
set -euo pipefail
RUN_DIR="${ABORTAUDIT_CH_RUN_DIR:-/tmp/abortaudit-clickhouse}"
while [ $# -gt 0 ]; do
  case "$1" in
    --run-dir) RUN_DIR="$2"; shift 2 ;;
    --run-dir=*) RUN_DIR="${1#*=}"; shift ;;
    *) echo "stop.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
PID_FILE="$RUN_DIR/server.pid"
if [ ! -f "$PID_FILE" ]; then
  echo "[clickhouse/stop] not running (no $PID_FILE)" >&2
  exit 0
fi
pid="$(cat "$PID_FILE")"
if kill -0 "$pid" 2>/dev/null; then
  kill -TERM "$pid"
  for _ in $(seq 1 200); do  # up to 20 s for a clean shutdown
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    echo "[clickhouse/stop] pid $pid still alive after 20 s; sending KILL" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
fi
rm -f "$PID_FILE" "$RUN_DIR/server.port"
echo "[clickhouse/stop] stopped pid $pid" >&2
