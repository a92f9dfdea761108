#!/usr/bin/env bash
# Create/refresh the project's virtual environment (.venv) with occgui and the given extras.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh test,eval
# Idempotent: a second call with nothing changed returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
py=""
for c in python3.11 python3; do
  if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then py="$c"; break; fi
done
[ -n "$py" ] || { echo "occgui needs Python 3.11 (python3.11 not found)" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=".venv/.occgui-installed-${extras:-base}"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade "pip>=24"
  spec="."; [ -n "$extras" ] && spec=".[${extras}]"
  .venv/bin/python -m pip install --quiet -e "$spec"
  touch "$stamp"
fi
