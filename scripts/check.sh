#!/usr/bin/env bash
# The one definition of "clean": generated code matches proto/, lint, format, types, tests.
# Usage: scripts/check.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."
py=.venv/bin/python

echo "== generated code matches proto/"
$py scripts/gen_proto.py --check
echo "== ruff lint"
$py -m ruff check .
echo "== ruff format"
$py -m ruff format --check .
echo "== mypy"
$py -m mypy cri runtime
echo "== tests"
$py -m pytest -q -p no:cacheprovider "$@"
