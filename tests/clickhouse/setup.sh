#!/usr/bin/env bash
# Create tests/clickhouse/.venv with the pinned ClickHouse engine (chdb-core).
#
#   bash tests/clickhouse/setup.sh        # prints the venv's python path on stdout
#
# Idempotent: the venv is rebuilt only when requirements.txt changed (its sha256 is
# stamped in the venv), like fixtures/harness/regen.sh.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
PYTHON="${PYTHON:-python3}"
export PYTHONDONTWRITEBYTECODE=1  # keep __pycache__ out of the source tree

"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else "setup.sh: Python >= 3.9 needed (chdb-core)")'

want="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$VENV/.requirements.sha256" 2>/dev/null)" != "$want" ]; then
  echo "[clickhouse/setup] creating $VENV and installing pinned requirements ..." >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  # --no-deps: requirements.txt pins the whole dependency closure; pip check proves
  # it is complete and consistent.
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-deps -r "$HERE/requirements.txt" >&2
  "$VENV/bin/pip" check --disable-pip-version-check >&2
  echo "$want" > "$VENV/.requirements.sha256"
fi
echo "$VENV/bin/python"
