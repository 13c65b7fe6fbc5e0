#!/usr/bin/env bash
# The GPU path, checked on a GPU in one command (issue 16), or its CPU smoke run (--smoke, what CI runs).
#
#   scripts/gpu_check_wheels.sh          # here, once: the wheels the GPU machine lacks -> .whl/ (git-ignored)
#   scripts/gpu_check.sh                 # on the GPU machine (carry .whl): at most 570 s, one device call
#   scripts/gpu_check.sh --only train_longest   # a later call: only these steps (install and env always run)
#   scripts/gpu_check.sh --smoke         # anywhere, CPU: tiny model, same steps, a few minutes on 2 cores
# With the session's device tool: run(command="scripts/gpu_check.sh", carry=[".whl"], timeout_s=600).
#
# Steps, each under its own `timeout` (and all within GPU_CHECK_BUDGET_S), so one failure or hang does not
# eat the others; a failed step is recorded and the next one runs. The default budget (570 s) fits one
# device call (at most 600 s a command); steps that do not fit are recorded as skipped (train_longest,
# last, usually is: run it in a second call with --only train_longest, or set GPU_CHECK_BUDGET_S=700):
#   env            python, torch, CUDA device, and the version of every package the steps import
#   install        (GPU) pip install --no-index --no-deps .whl/*.whl into $GPU_CHECK_SITE, put on PYTHONPATH
#   bench_train    scripts/bench_train.py --gpu: reference recipe vs the GPU preset through the real
#                  `rag-de train` path, Mistral-7B shape, real tokens/s and peak GiB in one run
#   bench_demo     scripts/bench_demo.py --gpu: plain `generate` vs the demo's fast path, 4-bit 7B shape +
#                  LoRA, tokens/s at batch 1, greedy outputs identical
#   pipeline       scripts/gpu_check_pipeline.py: local Hub, `rag-de build`, publish, a few steps of the GPU
#                  preset (training_space/configs/gpu-mistral7b-24gb.yaml) pushed, `rag-de evaluate`, the card
#   train_longest  scripts/bench_train.py --gpu --only-longest: longest single sequence within 22 GiB
#
# Output: $OUT (default ./gpu_check_out) holds figures.jsonl, one JSON line per step:
#   {"step", "status": ok|failed|timeout|skipped, "rc", "seconds", "limit_s", "figures": {...}, "log_tail"}
# and one log per step (<step>.log). At most 8 files: what the device tool brings back.
# Settings (environment): PYTHON (default: ./.venv/bin/python if present, else python3), GPU_CHECK_WORK
# (scratch, default /tmp/gpu-check-$MODE; the GPU run needs ~35 GB), GPU_CHECK_BUDGET_S (default 570 on a
# GPU), GPU_CHECK_LIMIT_<STEP> (seconds per step), GPU_CHECK_ABLATIONS=1 (also: preset without Liger, preset
# with sdpa), GPU_CHECK_SITE (default /tmp/gpu-check-site).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
MODE=gpu
ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) MODE=smoke ;;
    --only) ONLY=",${2:-},"; shift ;;
    --only=*) ONLY=",${1#--only=}," ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: error: unknown argument '$1', in the command line; use: scripts/gpu_check.sh" \
         "[--smoke] [--only STEP,STEP]" >&2; exit 2 ;;
  esac
  shift
done
OUT="${OUT:-$ROOT/gpu_check_out}"
WORK="${GPU_CHECK_WORK:-/tmp/gpu-check-$MODE}"
SITE="${GPU_CHECK_SITE:-/tmp/gpu-check-site}"
if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
mkdir -p "$OUT" "$WORK"
FIGURES="$OUT/figures.jsonl"
: > "$FIGURES"
STARTED=$(date +%s)
if [ "$MODE" = gpu ]; then BUDGET="${GPU_CHECK_BUDGET_S:-570}"; else BUDGET="${GPU_CHECK_BUDGET_S:-5400}"; fi

# Isolated Hub/cache state; the pipeline step starts its own local Hub and points its commands at it.
unset HF_ENDPOINT HF_TOKEN
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" WORK
export HF_HOME="$WORK/hf-home" RAG_DE_CACHE="$WORK/cache" HF_HUB_DISABLE_TELEMETRY=1 HF_HUB_DISABLE_XET=1
export TOKENIZERS_PARALLELISM=false MPLBACKEND=Agg PYTHONUNBUFFERED=1 GRADIO_ANALYTICS_ENABLED=False

# record STEP STATUS RC SECONDS LIMIT [FIGURES_JSONL] [LOG] [NOTE]: one JSON line to figures.jsonl
record() {
  "$PYTHON" - "$@" >> "$FIGURES" <<'EOF'
import json, sys
from pathlib import Path
step, status, rc, seconds, limit = sys.argv[1:6]
figures_file = sys.argv[6] if len(sys.argv) > 6 else ""
log = sys.argv[7] if len(sys.argv) > 7 else ""
note = sys.argv[8] if len(sys.argv) > 8 else ""
line = {"step": step, "status": status, "rc": int(rc), "seconds": round(float(seconds), 1), "limit_s": int(limit)}
figures = {}
if figures_file and Path(figures_file).exists():
    for text in Path(figures_file).read_text().splitlines():
        if text.strip():
            figures.update(json.loads(text))
line["figures"] = figures
if note:
    line["note"] = note
if status != "ok" and log and Path(log).exists():
    line["log_tail"] = [l[-300:] for l in Path(log).read_text(errors="replace").splitlines()[-12:]]
print(json.dumps(line))
EOF
}

# step NAME LIMIT_S COMMAND...: run under its own timeout (capped by what is left of the budget)
step() {
  local name="$1" limit="$2"; shift 2
  local var="GPU_CHECK_LIMIT_${name^^}"
  limit="${!var:-$limit}"
  local left=$((BUDGET - ($(date +%s) - STARTED)))
  [ "$limit" -le "$left" ] || limit="$left"
  local log="$OUT/$name.log" figs="$WORK/$name.jsonl"
  rm -f "$figs"
  if [ -n "$ONLY" ] && [[ "$ONLY" != *",$name,"* ]] && [ "$name" != install ] && [ "$name" != env ]; then
    record "$name" skipped 0 0 0 "" "" "not in --only ${ONLY:1:-1}"
    return 0
  fi
  if [ "$limit" -lt 20 ]; then
    echo "[gpu_check] $name: skipped, the budget of ${BUDGET}s is spent"
    record "$name" skipped 0 0 "$limit" "" "" "GPU_CHECK_BUDGET_S=${BUDGET}s spent before this step"
    return 0
  fi
  echo "[gpu_check] $name (limit ${limit}s): $*"
  local t0 rc status
  t0=$(date +%s%N)
  FIGS="$figs" timeout --kill-after=20 "$limit" "$@" > "$log" 2>&1
  rc=$?
  case "$rc" in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
  local ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  local secs="$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"
  echo "[gpu_check] $name: $status (rc $rc, ${secs}s)"
  record "$name" "$status" "$rc" "$secs" "$limit" "$figs" "$log"
}

env_report() {
  "$PYTHON" - "$MODE" > "$FIGS" <<'EOF'
import importlib, importlib.metadata as md, importlib.util, json, platform, sys
mode = sys.argv[1]
modules = {"torch": "torch", "transformers": "transformers", "trl": "trl", "peft": "peft",
           "accelerate": "accelerate", "bitsandbytes": "bitsandbytes", "datasets": "datasets",
           "huggingface_hub": "huggingface-hub", "bm25s": "bm25s", "Stemmer": "PyStemmer",
           "starlette": "starlette", "uvicorn": "uvicorn", "rouge_score": "rouge-score", "nltk": "nltk",
           "sacrebleu": "sacrebleu", "matplotlib": "matplotlib", "pandas": "pandas", "pyarrow": "pyarrow",
           "tokenizers": "tokenizers", "safetensors": "safetensors", "yaml": "pyyaml", "tensorboard": "tensorboard"}
if mode == "gpu":
    modules.update({"liger_kernel": "liger-kernel", "triton": "triton"})
versions, missing = {}, []
for module, dist in modules.items():
    try:
        if mode == "gpu":   # importing is the real check (a CUDA library that fails to load, say)
            importlib.import_module(module)
        elif importlib.util.find_spec(module) is None:   # smoke: quick, the steps import them anyway
            raise ImportError(f"no module named {module!r}")
        versions[dist] = md.version(dist)
    except Exception as exc:
        missing.append(f"{dist} ({type(exc).__name__}: {str(exc)[:120]})")
import torch
figures = {"python": platform.python_version(), "mode": mode, "versions": versions, "missing": missing,
           "cuda": torch.cuda.is_available(),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "gpu_memory_gib": (torch.cuda.get_device_properties(0).total_memory / 2**30
                              if torch.cuda.is_available() else None)}
print(json.dumps(figures))
if missing or (mode == "gpu" and not figures["cuda"]):
    print("missing: " + ", ".join(missing) + ("" if figures["cuda"] or mode != "gpu" else "; no CUDA"), file=sys.stderr)
    sys.exit(1)
EOF
}
export -f env_report
export PYTHON MODE

install_wheels() {
  ls .whl/*.whl > /dev/null 2>&1 || { echo "no .whl/*.whl: run scripts/gpu_check_wheels.sh here and carry .whl" >&2; return 1; }
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    && echo "{\"wheels\": $(ls .whl/*.whl | wc -l)}" > "$FIGS"
}
export -f install_wheels
export SITE

if [ "$MODE" = gpu ]; then
  echo "[gpu_check] GPU run, budget ${BUDGET}s, work $WORK, figures $FIGURES"
  step install 45 bash -c install_wheels
  export PYTHONPATH="$SITE:$PYTHONPATH"
  step env 30 bash -c env_report
  VARIANTS="reference,preset"
  [ "${GPU_CHECK_ABLATIONS:-0}" = 1 ] && VARIANTS="reference,preset,preset without liger,preset with sdpa"
  step bench_train 200 bash -c '"$PYTHON" scripts/bench_train.py --gpu --steps 6 --variants "$1" --skip-longest \
    --work "$WORK/train" --variant-timeout 150 --json "$FIGS"' _ "$VARIANTS"
  step bench_demo 150 bash -c '"$PYTHON" scripts/bench_demo.py --gpu --work_dir "$WORK/demo" --new_tokens 64 \
    --repeats 2 --json "$FIGS"'
  step pipeline 150 bash -c '"$PYTHON" scripts/gpu_check_pipeline.py --work "$WORK/pipeline" --steps 4 \
    --eval-limit 4 --max-new-tokens 24 --json "$FIGS"'
  step train_longest 150 bash -c '"$PYTHON" scripts/bench_train.py --gpu --only-longest --steps 2 \
    --longest-lengths 8192,16384,32768 --work "$WORK/train" --variant-timeout 140 --json "$FIGS"'
else
  echo "[gpu_check] CPU smoke run (tiny model), work $WORK, figures $FIGURES"
  # The smoke limits only catch hangs: on 2 shared cores (load 10+) each step took several times its idle time.
  record install skipped 0 0 0 "" "" "smoke: the packages come from $PYTHON's environment"
  step env 300 bash -c env_report
  step bench_train 1500 bash -c '"$PYTHON" scripts/bench_train.py --gpu --tiny --steps 2 --variants reference,preset \
    --skip-longest --work "$WORK/train" --variant-timeout 700 --json "$FIGS"'
  step bench_demo 900 bash -c '"$PYTHON" scripts/bench_demo.py --gpu --tiny --work_dir "$WORK/demo" --chunks 500 \
    --queries 20 --new_tokens 8 --repeats 1 --json "$FIGS"'
  step pipeline 1500 bash -c '"$PYTHON" scripts/gpu_check_pipeline.py --tiny --work "$WORK/pipeline" --steps 1 \
    --eval-limit 2 --max-new-tokens 8 --max-length 512 --max-train-samples 16 --json "$FIGS"'
  step train_longest 900 bash -c '"$PYTHON" scripts/bench_train.py --gpu --tiny --only-longest --steps 2 \
    --longest-lengths 512 --work "$WORK/train" --variant-timeout 700 --json "$FIGS"'
fi

failed=$("$PYTHON" -c 'import json,sys; print(" ".join(r["step"] for r in map(json.loads, open(sys.argv[1])) if r["status"] not in ("ok", "skipped")))' "$FIGURES")
echo "[gpu_check] done in $(( $(date +%s) - STARTED ))s; figures: $FIGURES"
if [ -n "$failed" ]; then
  echo "[gpu_check] not ok: $failed (see $OUT/<step>.log and log_tail in figures.jsonl)"
  exit 1
fi
