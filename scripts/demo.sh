#!/usr/bin/env bash
# The main job on a fresh machine: set up, then run the demo (see scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/demo.py "$@"
