#!/usr/bin/env bash
# Command 2: set up the environment with the test extras, then run the test suite.
# Without arguments: every test, including those marked `slow` (the multi-minute end-to-end runs of the
# quickstart and the default CPU training). Arguments go to pytest:
#   scripts/test.sh -m "not slow"    # the quick loop while you work (a few minutes)
#   scripts/test.sh -m slow          # only the slow end-to-end tests
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="test" source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec python -m pytest --durations=15 "$@"
