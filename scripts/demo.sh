#!/usr/bin/env bash
# Install occgui (first run only) and reconstruct the bundled sample photo into out/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/occgui run resources/samples/astronaut_hand.png -o out "$@"
echo "open out/astronaut_hand/ (mesh.obj + texture.png, mesh.glb, parsing_*_color.png, deoccluded.png)"
