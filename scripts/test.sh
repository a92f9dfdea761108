#!/usr/bin/env bash
# Install occgui with its test extras and a virtual X server (first run only), then run the tests.
# Extra arguments go to pytest (e.g. `-m slow` for the slow, opt-in tests).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v xvfb-run >/dev/null 2>&1 || ! ldconfig -p | grep -q libxcb-icccm; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 \
    libxcb-xkb1 libxkbcommon-x11-0 libxcb-shape0 libxcb-cursor0 libegl1 libgl1 libglx-mesa0 libfontconfig1 libdbus-1-3 >/dev/null
fi
# cluster: Ray, for the local two-actor tests of occgui.batch (slow tier; they skip without it)
bash scripts/setup.sh test,eval,cluster
# Lint first (config: [tool.ruff] in pyproject.toml); any finding fails the run before the tests start.
.venv/bin/ruff check .
exec xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/python -m pytest "$@"
