#!/usr/bin/env python
"""The decision and generation cost on CPU: the two speed choices of `rag-de evaluate`, side by side.

1. The evidence reading's passes: one forward per (question, chunk) vs length-sorted left-padded batches
   (`answering.decision.question_logprobs`, `EVIDENCE_BATCH_TOKENS`).
2. The 4-bit weights: bitsandbytes' NF4 layers (dequantized on every call) vs dequantized once
   (`rag_de.modeling.dequantize_4bit_on_cpu`), for the evidence passes and for greedy generation.

Same rows, same model (the embedded SmolLM2 in NF4, as `rag-de train` tunes and `rag-de evaluate` reads,
optionally with an adapter); prints seconds per row, the ratios and the largest differences.

    python scripts/bench_evidence.py --split validation --rows 20 [--data DIR] [--adapter DIR]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def plain_logprobs(model, tokenizer, requests) -> list[float]:
    """The reference: prefix + question in one forward for every request (what the reading did before)."""
    import torch

    from answering.decision import _question_prefix

    out = []
    with torch.no_grad():
        for question, chunks in requests:
            prefix = tokenizer(_question_prefix(tokenizer, chunks), add_special_tokens=False)["input_ids"]
            target = tokenizer(question.strip(), add_special_tokens=False)["input_ids"]
            logits = model(input_ids=torch.tensor([prefix + target]), logits_to_keep=len(target) + 1).logits[0, :-1]
            logp = torch.log_softmax(logits.float(), -1)[torch.arange(len(target)), torch.tensor(target)]
            out.append(float(logp.sum()))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="", help="a built dataset folder (default: the quickstart's build)")
    parser.add_argument("--split", default="validation")
    parser.add_argument("--rows", type=int, default=38, help="first N rows of the split")
    parser.add_argument("--adapter", default="", help="a LoRA adapter folder (default: the base model)")
    parser.add_argument("--generate", type=int, default=8, help="greedy answers generated (first N rows)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="as the quickstart's evaluation")
    args = parser.parse_args()

    import torch

    from dataset_builder.build_config import CPU_BUILD_CONFIG
    from dataset_builder.contract import contexts_from_column, render_prompt_text
    from answering.decision import question_logprobs
    from dataset_builder.schema import load_built
    from rag_de.base_model import EMBEDDED_MODEL_ID
    from answering.generate import generate_batch
    from rag_de.modeling import (LoadQuantizationConfig, dequantize_4bit_on_cpu, load_adapter, load_causal_lm,
                                 load_tokenizer)

    data = Path(args.data) if args.data else Path(tempfile.mkdtemp()) / "data"
    if not args.data:
        subprocess.run([sys.executable, "-m", "rag_de", "build", "--config", str(CPU_BUILD_CONFIG), "--out",
                        str(data)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    rows = list(load_built(data)[args.split])[:args.rows]
    requests = []
    for row in rows:
        chunks = contexts_from_column(row["contexts"])
        requests += [(row["question"], [])] + [(row["question"], [c]) for c in chunks]
    tokenizer = load_tokenizer(EMBEDDED_MODEL_ID)
    prompts = [render_prompt_text(tokenizer, row["question"], contexts_from_column(row["contexts"]))
               for row in rows[:args.generate]]
    print(f"{len(rows)} rows of {data} [{args.split}], {len(requests)} question passes, {len(prompts)} generated "
          f"answers of {args.max_new_tokens} tokens, torch threads {torch.get_num_threads()}")
    times, results = {}, {}
    for weights in ("nf4", "dequantized"):
        model = load_causal_lm(EMBEDDED_MODEL_ID, LoadQuantizationConfig(kind="nf4", compute_dtype="float32"),
                               dtype="float32", device="cpu", tokenizer=tokenizer)
        if args.adapter:
            model = load_adapter(model, args.adapter)
        model.eval()
        if weights == "dequantized":
            assert dequantize_4bit_on_cpu(model)
        for name, fn in (("plain", plain_logprobs), ("batched", question_logprobs)):
            start = time.perf_counter()
            results[(weights, name)] = fn(model, tokenizer, requests)
            times[(weights, name)] = time.perf_counter() - start
        start = time.perf_counter()
        results[(weights, "generation")] = generate_batch(model, tokenizer, prompts, args.max_new_tokens)
        times[(weights, "generation")] = time.perf_counter() - start
    print(f"\n{'weights':<13}{'evidence plain s/row':>22}{'batched s/row':>15}{'generation s/answer':>21}")
    for weights in ("nf4", "dequantized"):
        plain, batched = times[(weights, "plain")] / len(rows), times[(weights, "batched")] / len(rows)
        print(f"{weights:<13}{plain:>22.2f}{batched:>15.2f}{times[(weights, 'generation')] / max(1, len(prompts)):>21.2f}")
    base = times[("nf4", "plain")]
    speedups = ", ".join(f"{w} {k} {base / times[(w, k)]:.2f}x"
                         for w, k in (("nf4", "batched"), ("dequantized", "plain"), ("dequantized", "batched")))
    print(f"evidence speed-up over NF4 plain: {speedups}; generation, dequantized over NF4: "
          f"{times[('nf4', 'generation')] / times[('dequantized', 'generation')]:.2f}x")
    reference = results[("nf4", "plain")]
    for key in (("nf4", "batched"), ("dequantized", "plain"), ("dequantized", "batched")):
        diff = max(abs(a - b) for a, b in zip(reference, results[key]))
        print(f"largest |log P difference| {key[0]} {key[1]} vs nf4 plain: {diff:.2e} nats")
    same = sum(a == b for a, b in zip(results[("nf4", "generation")], results[("dequantized", "generation")]))
    print(f"greedy answers identical, NF4 vs dequantized: {same}/{len(prompts)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
