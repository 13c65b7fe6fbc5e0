#!/usr/bin/env bash
# Command 2: set up the environment with the test extras, then run the test suite.
# Without arguments: every test but those marked `slow` (the multi-minute end-to-end runs of the
# quickstart and the default CPU training; pytest reports them as deselected). Arguments go to pytest:
#   scripts/test.sh -m slow          # only the slow end-to-end tests
#   scripts/test.sh -m ""            # everything
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="test" source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
if [ "$#" -eq 0 ]; then
  set -- -m "not slow"
fi
exec python -m pytest "$@"
