"""Step 2 of scripts/gpu_check.sh: a short real run of the GPU preset, through the subcommands a user types.

    local Hub (`rag-de hub serve`) -> `rag-de build` (shipped sample data) -> `rag-de publish`
    -> a random Mistral-shaped base model pushed to that Hub (no network: nothing is downloaded)
    -> `rag-de train --config training_space/configs/gpu-mistral7b-24gb.yaml` for a few steps, pushed
    -> `rag-de evaluate` of that adapter -> `rag-de card model --push`

The stages are the quickstart's (`rag_de.quickstart.Pipeline`), so this checks the same code a user runs;
only the base model and the preset differ. The base model is Mistral-7B's width (4096, GQA 8, 14336 MLP)
with 2 layers (`--layers`): the preset's 4-bit load, flex attention, Liger and packing all run, and the
push/download of its weights stays around 1 GB. The full-depth 7B shape is measured in step 1
(scripts/bench_train.py --gpu). `--tiny` (CPU smoke test) uses a toy width and switches off what needs
CUDA (Liger, bf16, flex attention), as `rag-de train` would refuse them there.

    python scripts/gpu_check_pipeline.py --work /tmp/gpu-check/pipeline --json figures.jsonl [--tiny]

One JSON line is appended to --json: seconds per stage, the train summary's figures, the evaluation
metrics (base and adapter), and what the Hub holds afterwards. A failed stage ends the run with exit 1
and its name in the JSON line.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "scripts"))

BASE_REPO = "org/mistral-shaped-random"   # `org`: the namespace the local Hub's admin writes to
ADAPTER_NAME = "mistral-shaped-rag-de-qlora"
# what `rag-de train` refuses without CUDA, switched off for the CPU smoke run (as bench_train.py does)
CPU_TRAIN_FLAGS = ["--model.dtype", "float32", "--quantization.compute_dtype", "float32", "--training.bf16", "false",
                   "--training.use_liger_kernel", "false", "--model.attn_implementation", "sdpa"]
TINY_SHAPE = {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2}


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def push_base_model(pipeline, work: Path, shape: dict) -> dict:
    """Random Mistral-shaped weights + a byte-level BPE tokenizer with ChatML, uploaded as BASE_REPO."""
    import bench_demo
    from huggingface_hub import HfApi

    folder = work / "base-model"
    index = bench_demo.ChunkIndex(bench_demo.synthetic_chunks(2000, seed=0))
    bench_demo.random_mistral(folder, bench_demo.BenchConfig(), index, shape)
    api = HfApi(endpoint=pipeline.env["HF_ENDPOINT"], token=pipeline.env["HF_TOKEN"])
    api.create_repo(BASE_REPO, exist_ok=True)
    api.upload_folder(repo_id=BASE_REPO, folder_path=str(folder), commit_message="random Mistral-shaped weights")
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    return {"repo": BASE_REPO, "weights_gib": size / 2**30, **shape}


def hub_state(pipeline) -> dict:
    """What a user sees on the Hub after the run: adapter files and a card with evaluation results."""
    from huggingface_hub import HfApi, hf_hub_download

    api = HfApi(endpoint=pipeline.env["HF_ENDPOINT"], token=pipeline.env["HF_TOKEN"])
    files = set(api.list_repo_files(pipeline.adapter_repo))
    card = Path(hf_hub_download(pipeline.adapter_repo, "README.md", endpoint=pipeline.env["HF_ENDPOINT"],
                                token=pipeline.env["HF_TOKEN"])).read_text(encoding="utf-8")
    return {"adapter_files": sorted(files), "adapter_pushed": {"adapter_model.safetensors",
                                                               "adapter_config.json"} <= files,
            "card_has_model_index": "model-index:" in card, "card_names_base": BASE_REPO in card}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="folder for the Hub data, dataset, base model and run")
    parser.add_argument("--json", default=None, help="append the figures as one JSON line to this file")
    parser.add_argument("--tiny", action="store_true", help="toy width, CPU-compatible flags (smoke test)")
    parser.add_argument("--layers", type=int, default=2, help="decoder layers of the base model")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps of the training run")
    parser.add_argument("--eval-limit", type=int, default=4, help="test examples evaluated")
    parser.add_argument("--max-new-tokens", type=int, default=24, help="evaluation generation length")
    parser.add_argument("--max-length", type=int, default=0,
                        help="tokens per packed row (0: the preset's, 4096)")
    parser.add_argument("--max-train-samples", type=int, default=0, help="train on the first N rows (0: all)")
    args = parser.parse_args(argv)

    import signal

    import torch

    from local_hub.compat import prefer_lfs_uploads
    from rag_de.quickstart import Pipeline, QuickstartConfig

    # `timeout` (scripts/gpu_check.sh) stops a step with SIGTERM: unwind, so the Hub server is stopped too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    prefer_lfs_uploads()   # the base-model upload below goes through huggingface_hub directly
    from training_space.config import GPU_PRESET

    on_cuda = torch.cuda.is_available()
    if not on_cuda and not args.tiny:
        print("gpu_check_pipeline: error: no CUDA GPU here, pass --tiny for the CPU smoke run", file=sys.stderr)
        return 2
    work = Path(args.work)
    half = max(1, args.steps // 2)
    train_args = ["--base-model", BASE_REPO, "--training.eval_steps", str(half), "--training.save_steps", str(half),
                  "--data.max_eval_samples", str(min(4, args.eval_limit)), "--training.logging_steps", "1"]
    if args.max_train_samples:
        train_args += ["--data.max_train_samples", str(args.max_train_samples)]
    if args.max_length:
        train_args += ["--data.max_length", str(args.max_length)]
    if not on_cuda:
        train_args += CPU_TRAIN_FLAGS
    config = QuickstartConfig(workdir=str(work), hub_data_dir=str(work / "hub"), hub_port=free_port(), namespace="org",
                            adapter_name=ADAPTER_NAME, base_model=BASE_REPO, train_config=str(GPU_PRESET),
                            max_steps=args.steps, train_args=train_args, headless=True)
    pipeline = Pipeline(config)
    record: dict = {"bench": "pipeline", "device": torch.cuda.get_device_name(0) if on_cuda else "CPU",
                    "preset": GPU_PRESET.name, "steps": args.steps, "stages_s": {}}
    shape = {**(TINY_SHAPE if args.tiny else {}), "num_hidden_layers": args.layers, "vocab_size": 8192}

    def stage(name: str, fn):
        started = time.time()
        record["failed_stage"] = name
        out = fn()
        record["stages_s"][name] = round(time.time() - started, 1)
        return out

    def evaluate():
        pipeline.rag_de("evaluate", "evaluate", "--base", BASE_REPO, "--adapter", pipeline.adapter_repo,
                        "--dataset", pipeline.dataset_repo, "--split", "test", "--out", str(pipeline.run_dir / "eval"),
                        "--run-dir", str(pipeline.run_dir), "--limit", str(args.eval_limit),
                        "--max_new_tokens", str(args.max_new_tokens), "--batch_size", str(args.eval_limit))

    try:
        stage("hub", pipeline.start_hub)
        stage("build", pipeline.build)
        stage("publish", pipeline.publish)
        record["base_model"] = stage("base_model", lambda: push_base_model(pipeline, work, shape))
        stage("train", pipeline.train)
        stage("evaluate", evaluate)
        stage("card", pipeline.push_card)
        record["hub"] = stage("hub_check", lambda: hub_state(pipeline))
        del record["failed_stage"]
        summary = json.loads((pipeline.run_dir / "train_summary.json").read_text())
        record["train"] = {k: summary.get(k) for k in ("hardware", "quantization", "global_step", "train_tokens",
                                                       "tokens_per_s", "peak_memory_gb", "train_loss", "eval_loss",
                                                       "train_runtime_s")}
        results = json.loads((pipeline.run_dir / "eval" / "results.json").read_text())
        record["eval"] = {name: {"base": row.get("base"), "adapter": row.get("adapter")}
                          for name, row in results.get("metrics", {}).items() if isinstance(row, dict)}
        ok = record["hub"]["adapter_pushed"] and record["hub"]["card_has_model_index"]
    except (SystemExit, Exception) as exc:   # a stage's subprocess failed (SystemExit) or a check raised
        record["error"] = f"{type(exc).__name__}: {exc}"
        ok = False
    finally:
        pipeline.stop_hub()
    if args.json:
        with open(args.json, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
