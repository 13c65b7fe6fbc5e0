"""Training throughput, side by side: real (non-pad) tokens/s, padding share, peak memory and s/step.

Every variant runs through the real `rag-de train` path (`training_space.train.build_trainer`: TRL's
SFTTrainer, collator, accelerate), each in its own subprocess so peak memory is its own.

CPU (default): the embedded SmolLM2-135M-Instruct on the sample dataset, rows <= 768 tokens (the CPU
preset's limit), variants padded/packed x sdpa/eager; Liger needs CUDA and is reported as skipped.

    python scripts/bench_train.py [--steps 3] [--variants padded-sdpa,packed-sdpa,padded-eager]

GPU (`--gpu`): a Mistral-7B-shaped model built from `MistralConfig()` with random weights (saved once to
--work, no download), examples with lengths uniform in 256-2048 tokens; the reference recipe (batch 4
padded to the longest, non-4-bit params upcast to fp32, SDPA) vs the GPU preset
(training_space/configs/gpu-mistral7b-24gb.yaml: packed 4096-token rows, flex attention, Liger, bf16
params), plus ablations, and the longest single sequence that trains within 22 GiB.

    python scripts/bench_train.py --gpu [--steps 8] [--work /tmp/bench-7b] [--json figures.jsonl]

`--gpu --tiny`: the same GPU variants on a tiny Mistral-shaped model (2 layers, width 64) and short rows,
on CUDA if present, else on the CPU with what needs CUDA switched off (Liger, bf16, paged optimizer);
scripts/gpu_check.sh --smoke runs it so the GPU code path cannot rot on a machine without a GPU.
`--json PATH` appends one JSON line with every figure (what scripts/gpu_check.sh collects).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

CPU_VARIANTS = {
    # name: (overrides on top of the CPU preset)
    "padded-sdpa": {"data": {"packing": False}, "model": {"attn_implementation": "sdpa"}},
    "packed-sdpa": {"data": {"packing": True, "max_length": 1536}, "model": {"attn_implementation": "sdpa"},
                    "training": {"per_device_train_batch_size": 1}},
    "padded-eager": {"data": {"packing": False}, "model": {"attn_implementation": "eager"}},
    "packed-sdpa-liger": {"data": {"packing": True, "max_length": 1536}, "training": {
        "per_device_train_batch_size": 1, "use_liger_kernel": True}},
}
REFERENCE_GPU = {   # the origin project's recipe, as in the measurement
    "model": {"dtype": "bfloat16", "attn_implementation": "sdpa"},
    "data": {"packing": False, "max_length": 2048},
    "quantization": {"kind": "nf4", "compute_dtype": "bfloat16", "upcast_non_quantized": True},
    "training": {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 1, "bf16": True,
                 "use_liger_kernel": False, "gradient_checkpointing": True},
}
GPU_VARIANTS = {
    "reference (padded b4, fp32 non-4bit, sdpa)": ("reference", {}),
    "preset (packed 4096, flex, liger, bf16)": ("preset", {}),
    "preset without liger": ("preset", {"training": {"use_liger_kernel": False}}),
    "preset with sdpa": ("preset", {"model": {"attn_implementation": "sdpa"}}),
}
LONGEST_LIMIT_GIB = 22.0
# What needs CUDA, switched off when the GPU variants run on a CPU (--gpu --tiny without a GPU).
CPU_COMPATIBLE = {"model": {"dtype": "float32", "attn_implementation": "sdpa"},   # FlexAttention: no CPU backward
                  "quantization": {"compute_dtype": "float32"},
                  "training": {"bf16": False, "use_liger_kernel": False}}


@dataclass(frozen=True)
class GpuShape:
    """The random Mistral-shaped model and the rows the GPU variants train on."""

    title: str
    config: dict               # MistralConfig overrides (empty: Mistral-7B-v0.1's shape)
    lengths: tuple[int, int]   # example lengths in tokens, uniform
    rows: int
    preset_max_length: int     # packed row length of the preset (None-like 0: the preset's own)
    reference_max_length: int
    longest: tuple[int, ...]   # single-sequence lengths tried, ascending
    words: int = 31000         # word-level vocabulary (one token per word, so lengths are exact)
    vocab_size: int = 32000    # the model's (Mistral-7B-v0.1: 32000); >= words + 4 special tokens


SHAPES = {
    "7b": GpuShape("Mistral-7B shape", {}, (256, 2048), 600, 0, 2048,
                   (4096, 8192, 12288, 16384, 24576, 32768)),
    "tiny": GpuShape("tiny Mistral shape (2 layers, width 64)",
                     {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                      "num_attention_heads": 4, "num_key_value_heads": 2}, (48, 200), 32, 512, 512, (512, 1024),
                     words=2000, vocab_size=2048),
}


# ------------------------------------------------------------------------------------------------
# One variant (runs in a subprocess)

def measure(overrides: dict, preset: str, steps: int, out_json: Path) -> None:
    import torch
    from transformers import TrainerCallback

    from rag_de import config as config_lib
    from training_space.config import CPU_PRESET, GPU_PRESET, TrainConfig
    from training_space.train import build_trainer, peak_memory_gb

    base = config_lib.read_yaml(CPU_PRESET if preset == "cpu" else GPU_PRESET)
    if preset == "reference":
        base = config_lib.merge(base, REFERENCE_GPU)
    config = config_lib.from_dict(TrainConfig, config_lib.merge(base, overrides))
    config.training.max_steps = steps
    config.training.save_steps = config.training.eval_steps = 10 ** 6
    config.training.load_best_model_at_end = False
    config.training.logging_steps = 1
    config.data.eval_split = None
    config.tracking.report_to = ["none"]
    config.training.output_dir = tempfile.mkdtemp(prefix="bench-train-")

    run = build_trainer(config)
    trainer = run.trainer
    # (real, total) tokens of each collated batch, first in first out: the Trainer collates all of an
    # optimizer step's micro-batches before it trains on them (and accelerate collates one batch ahead),
    # so a single "last batch" slot would count one micro-batch per step.
    counts = {"steps": [], "queue": []}
    collate = trainer.data_collator

    def counting_collator(examples):
        batch = collate(examples)
        total = int(batch["input_ids"].numel())
        real = int(batch["attention_mask"].sum()) if "attention_mask" in batch else total
        if "position_ids" in batch and "attention_mask" not in batch:   # padding-free: pad only at the tail
            real = int(sum(len(e["input_ids"]) for e in examples))
        counts["queue"].append((real, total))
        return batch

    trainer.data_collator = counting_collator

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            counts["steps"].append(time.perf_counter() - self.t0)

    trainer.add_callback(Timer())
    # count tokens per optimizer step from the batches the dataloader produced
    real_total = []
    orig_training_step = trainer.training_step

    def training_step(*args, **kwargs):
        real_total.append(counts["queue"].pop(0) if counts["queue"] else (0, 0))
        return orig_training_step(*args, **kwargs)

    trainer.training_step = training_step
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    accum = config.training.gradient_accumulation_steps
    per_step = [real_total[i * accum:(i + 1) * accum] for i in range(len(counts["steps"]))]
    timed = list(zip(counts["steps"], per_step))[1:] or list(zip(counts["steps"], per_step))  # skip warm-up
    seconds = sum(t for t, _ in timed)
    real = sum(r for _, batch in timed for r, _ in batch)
    total = sum(n for _, batch in timed for _, n in batch)
    result = {"s_per_step": seconds / len(timed), "real_tokens_per_s": real / seconds,
              "padding_share": 1 - real / total if total else 0.0, "peak_memory_gib": peak_memory_gb(run.device),
              "real_tokens_per_step": real / len(timed), "quantization": run.quantization,
              "attn": config.model.attn_implementation, "packing": config.data.packing}
    out_json.write_text(json.dumps(result))


# ------------------------------------------------------------------------------------------------
# Inputs

def cpu_dataset(work: Path, max_tokens: int = 768) -> Path:
    """The sample dataset, rows <= max_tokens (so padded and packed variants see the same examples)."""
    import pandas as pd

    from rag_de.base_model import EMBEDDED_MODEL_ID
    from rag_de.modeling import load_tokenizer
    from rag_de.data_files import data_files
    from training_space.data import ensure_sample_dataset

    out = work / "cpu-data"
    if (out / "train.parquet").exists():
        return out
    source = ensure_sample_dataset()
    tokenizer = load_tokenizer(EMBEDDED_MODEL_ID)
    frame = pd.concat([pd.read_parquet(f) for f in data_files(source)["train"]])
    frame = frame[[len(tokenizer(tokenizer.apply_chat_template([dict(m) for m in msgs], tokenize=False),
                                 add_special_tokens=False)["input_ids"]) <= max_tokens
                   for msgs in frame.messages]]
    out.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out / "train.parquet")
    return out


def gpu_inputs(work: Path, shape: GpuShape = SHAPES["7b"], seed: int = 0) -> tuple[Path, Path]:
    """A Mistral-shaped random model (bf16 safetensors) + tokenizer, and rows of `shape.lengths` tokens."""
    import pandas as pd
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import MistralConfig, MistralForCausalLM, PreTrainedTokenizerFast

    from dataset_builder.contract import Chunk, chat_messages, format_answer

    tag = "7b" if shape is SHAPES["7b"] else "tiny"
    model_dir, data_dir = work / f"mistral-{tag}-random", work / f"gpu-data-{tag}"
    if not (model_dir / "config.json").exists():
        # A word-level tokenizer over a fixed German vocabulary: one token per word, so lengths are exact.
        rng = random.Random(seed)
        words = [f"wort{i}" for i in range(shape.words)]
        specials = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        vocab = {w: i for i, w in enumerate(specials + words)}
        tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
        tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                       unk_token="<unk>")
        fast.chat_template = ("{% for m in messages %}<|im_start|> {{ m['role'] }} {{ m['content'] }} <|im_end|> "
                              "{% endfor %}{% if add_generation_prompt %}<|im_start|> assistant {% endif %}")
        # default: Mistral-7B-v0.1 shape: 4096 x 32 layers, 14336 MLP, GQA 8
        config = MistralConfig(vocab_size=shape.vocab_size, **shape.config)
        torch.manual_seed(seed)
        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            model = MistralForCausalLM(config).to(torch.bfloat16)
        model.save_pretrained(model_dir)
        fast.save_pretrained(model_dir)
        del model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        rows = []
        for i in range(shape.rows):
            length = rng.randint(*shape.lengths)
            answer = format_answer(" ".join(rng.choices(words, k=24)), 1)
            text = " ".join(rng.choices(words, k=max(8, length - 60)))
            chunk = Chunk(id=f"c{i}", text=text, title="")
            rows.append({"id": str(i), "messages": chat_messages("frage", [chunk], answer)})
        data_dir.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(rows).to_parquet(data_dir / "train.parquet")
    return model_dir, data_dir


# ------------------------------------------------------------------------------------------------
# Driver

def run_variant(name: str, preset: str, overrides: dict, steps: int, work: Path, timeout: int) -> dict:
    out = work / f"result-{abs(hash(name))}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--_measure", json.dumps({"preset": preset, "overrides": overrides}),
           "--steps", str(steps), "--_out", str(out)]
    print(f"[bench] {name} ...", flush=True)
    started = time.time()
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0 or not out.exists():
        tail = (proc.stderr or proc.stdout)[-600:]
        oom = "out of memory" in tail.lower()
        print(f"[bench] {name} failed ({'OOM' if oom else proc.returncode}): {tail.strip().splitlines()[-1:]}")
        return {"error": "OOM" if oom else f"exit {proc.returncode}"}
    result = json.loads(out.read_text())
    result["wall_s"] = time.time() - started
    return result


def print_table(rows: dict[str, dict], baseline: str) -> None:
    base = rows.get(baseline, {}).get("real_tokens_per_s")
    print(f"\n{'variant':<44}{'s/step':>9}{'real tok/s':>12}{'x base':>8}{'padding':>9}{'peak GiB':>10}")
    for name, r in rows.items():
        if "error" in r or "skipped" in r:
            print(f"{name:<44}{r.get('error') or r.get('skipped'):>48}")
            continue
        ratio = f"{r['real_tokens_per_s'] / base:.2f}" if base else "-"
        print(f"{name:<44}{r['s_per_step']:>9.2f}{r['real_tokens_per_s']:>12.1f}{ratio:>8}"
              f"{r['padding_share']:>9.1%}{r['peak_memory_gib']:>10.2f}")


def longest_sequence(model_dir: Path, work: Path, steps: int, lengths: tuple[int, ...],
                     extra: dict | None = None, timeout: int = 1800, progress=None) -> tuple[int, dict]:
    """Largest single-example length (one packed row) whose training peak stays within 22 GiB, and the
    figures of every length tried (ascending; the search stops at the first that fails or exceeds)."""
    import pandas as pd

    from dataset_builder.contract import Chunk, chat_messages, format_answer
    from rag_de.config import merge

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    words = sum(1 for t in tokenizer.get_vocab() if t.startswith("wort"))

    def messages(n_words: int) -> list[dict]:
        text = " ".join(f"wort{i % words}" for i in range(n_words))
        return chat_messages("frage", [Chunk(id="c", text=text)], format_answer("wort1 wort2", 1))

    # prompt template, system prompt, question and answer around the chunk, in tokens (+4: EOS and margin)
    overhead = len(tokenizer(tokenizer.apply_chat_template(messages(1), tokenize=False),
                             add_special_tokens=False)["input_ids"]) - 1 + 4
    best, tried = 0, {}
    for length in lengths:
        folder = work / f"long-{length}"
        folder.mkdir(parents=True, exist_ok=True)
        rows = [{"id": str(i), "messages": messages(length - overhead)} for i in range(4)]
        pd.DataFrame(rows).to_parquet(folder / "train.parquet")
        overrides = {"model": {"name": str(model_dir)}, "data": {"dataset": str(folder), "max_length": length},
                     "training": {"per_device_train_batch_size": 1, "gradient_accumulation_steps": 1}}
        r = run_variant(f"longest: {length}", "preset", merge(overrides, extra or {}), min(steps, 3), work,
                        timeout=timeout)
        tried[str(length)] = r
        if "error" in r or r["peak_memory_gib"] > LONGEST_LIMIT_GIB:
            break
        best = length
        print(f"[bench] {length} tokens: peak {r['peak_memory_gib']:.1f} GiB")
        if progress:
            progress(best, tried)
    return best, tried


def append_json(path: str | None, record: dict) -> None:
    """One JSON line, appended: the whole record so far (scripts/gpu_check.sh keeps the last line's keys)."""
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", action="store_true", help="Mistral-7B-shaped model on CUDA")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per variant (first is warm-up)")
    parser.add_argument("--variants", default=None, help="comma-separated subset of the variant names")
    parser.add_argument("--work", default=None, help="folder for the random model and data (GPU: ~15 GB)")
    parser.add_argument("--skip-longest", action="store_true", help="GPU: skip the longest-sequence search")
    parser.add_argument("--only-longest", action="store_true", help="GPU: only the longest-sequence search")
    parser.add_argument("--longest-lengths", default=None,
                        help="GPU: comma-separated single-sequence lengths to try, ascending (default: the shape's)")
    parser.add_argument("--tiny", action="store_true",
                        help="GPU variants on a tiny Mistral-shaped model (CUDA if present, else CPU): a smoke test")
    parser.add_argument("--variant-timeout", type=int, default=3600, help="seconds per variant subprocess")
    parser.add_argument("--json", default=None, help="append the figures as one JSON line to this file")
    parser.add_argument("--_measure", help=argparse.SUPPRESS)
    parser.add_argument("--_out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._measure:
        spec = json.loads(args._measure)
        measure(spec["overrides"], spec["preset"], args.steps, Path(args._out))
        return 0

    work = Path(args.work or tempfile.mkdtemp(prefix="bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    if not args.gpu:
        steps = args.steps or 3
        data = cpu_dataset(work)
        names = args.variants.split(",") if args.variants else list(CPU_VARIANTS)
        print(f"[bench] CPU, SmolLM2-135M (NF4, fp32 compute), {steps} steps per variant (first = warm-up), "
              f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        for name in names:
            overrides = {**CPU_VARIANTS[name], "data": {**CPU_VARIANTS[name].get("data", {}), "dataset": str(data)}}
            if CPU_VARIANTS[name].get("training", {}).get("use_liger_kernel"):
                rows[name] = {"skipped": "skipped: Liger kernels need CUDA (Triton)"}
                continue
            rows[name] = run_variant(name, "cpu", overrides, steps, work, timeout=args.variant_timeout)
        print(f"[bench] load average after: {os.getloadavg()[0]:.1f}")
        print_table(rows, "padded-sdpa")
        append_json(args.json, {"bench": "train", "device": "cpu", "variants": rows})
        return 0

    import torch

    from rag_de.config import merge

    on_cuda = torch.cuda.is_available()
    if not on_cuda and not args.tiny:
        print("--gpu needs a CUDA GPU (or add --tiny for the smoke test on the CPU)", file=sys.stderr)
        return 2
    shape = SHAPES["tiny" if args.tiny else "7b"]
    steps = args.steps or 8
    device = torch.cuda.get_device_name(0) if on_cuda else f"CPU ({os.cpu_count()} cores)"
    model_dir, data_dir = gpu_inputs(work, shape)
    # what the shape changes, then (on a CPU) what needs CUDA switched off
    common = merge({"model": {"name": str(model_dir)}}, {} if on_cuda else CPU_COMPATIBLE)
    record = {"bench": "train", "device": device, "shape": shape.title, "steps": steps, "variants": {}}
    names = args.variants.split(",") if args.variants else list(GPU_VARIANTS)
    names = [] if args.only_longest else [_variant_name(n) for n in names]
    if names:
        print(f"[bench] {device}: {shape.title}, random weights, lengths {shape.lengths[0]}-{shape.lengths[1]}, "
              f"{steps} steps per variant")
    for name in names:
        preset, extra = GPU_VARIANTS[name]
        data = {"dataset": str(data_dir)}
        if preset == "reference":
            data["max_length"] = shape.reference_max_length
        elif shape.preset_max_length:
            data["max_length"] = shape.preset_max_length
        rows[name] = run_variant(name, preset, merge(merge(common, {"data": data}), extra), steps, work,
                                 timeout=args.variant_timeout)
        append_json(args.json, {**record, "variants": rows})   # what is done survives a later timeout
    if names:
        print_table(rows, REFERENCE_NAME)
        record["variants"] = rows
        ref, pre = rows.get(REFERENCE_NAME, {}), rows.get(PRESET_NAME, {})
        if "real_tokens_per_s" in ref and "real_tokens_per_s" in pre:
            record["preset_vs_reference"] = pre["real_tokens_per_s"] / ref["real_tokens_per_s"]
            record["preset_peak_gib"] = pre["peak_memory_gib"]
            print(f"preset / reference real tokens/s: {record['preset_vs_reference']:.2f}x (target >= 4x), "
                  f"preset peak {pre['peak_memory_gib']:.1f} GiB (target <= 16)")
    if args.only_longest or not args.skip_longest:
        lengths = (tuple(int(x) for x in args.longest_lengths.split(",")) if args.longest_lengths
                   else shape.longest)
        best, tried = longest_sequence(
            model_dir, work, steps, lengths, extra=common, timeout=args.variant_timeout,
            progress=lambda b, t: append_json(args.json, {**record, "longest_seq_tokens": b, "longest_tried": t}))
        record.update(longest_seq_tokens=best, longest_tried=tried, longest_limit_gib=LONGEST_LIMIT_GIB)
        print(f"\nlongest single sequence within {LONGEST_LIMIT_GIB:.0f} GiB (GPU preset): {best} tokens")
    append_json(args.json, record)
    return 0


REFERENCE_NAME = "reference (padded b4, fp32 non-4bit, sdpa)"
PRESET_NAME = "preset (packed 4096, flex, liger, bf16)"


def _variant_name(short: str) -> str:
    """A variant by its full name or by its first word (reference, preset)."""
    if short in GPU_VARIANTS:
        return short
    matches = [n for n in GPU_VARIANTS if n.split(" (")[0] == short]
    if len(matches) != 1:
        raise SystemExit(f"unknown variant {short!r}; use one of {list(GPU_VARIANTS)} or reference, preset")
    return matches[0]


if __name__ == "__main__":
    sys.exit(main())
