#!/usr/bin/env bash
# Command 2: set up the environment with the test extras, then run the test suite.
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not slow" -x).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="test" source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec python -m pytest "$@"
