#!/usr/bin/env bash
# Command 1: set up the environment, then run the whole pipeline on the embedded default:
# local Hub -> dataset -> QLoRA adapter (CPU) -> evaluation -> adapter + card -> demo Space -> demo.
# Flags go to `rag-de quickstart` (e.g. --headless, --max_steps 20); see `rag-de quickstart --help`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${EXTRAS:-}" source "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
exec rag-de quickstart "$@"
