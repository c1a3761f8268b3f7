#!/usr/bin/env bash
# The one definition of "clean": generated code matches proto/, lint, format, types, tests.
# Usage: scripts/check.sh [--soak] [pytest args...]
#   --soak  also the long runs: tests/soak (1,000 pod lifecycles under churn, with leak counts
#           and List latency) and every crash point of tests/e2e/test_crash_points.py
set -euo pipefail
if [ "${1:-}" = "--soak" ]; then
    shift
    export PINNACE_SOAK=1
fi
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
