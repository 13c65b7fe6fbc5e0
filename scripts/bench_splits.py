#!/usr/bin/env python
"""How much of a decision figure is the split: the fused/evidence readings and the BM25 rule over several splits.

The quickstart's test split has 28 rows (9 unanswerable, 11 answerable with 2+ chunks), so one row moves a
figure by 0.06-0.1. This script builds the quickstart's dataset with several seeds (the same questions;
other documents in validation and test, other negatives), reads the model's decisions on each validation
and test split, tunes each reading's threshold on validation (as `rag-de train` does) and the BM25 rule's
too (as `rag-de evaluate` does), and prints the test figures per seed and their mean and standard deviation
side by side.

The model defaults to the embedded base (no adapter): an adapter trained on one seed's train split has seen
documents that other seeds put into test. The base model's fused reading measured within one row of the
10-/20-step adapters' on the quickstart split (README, learning curve).

    python scripts/bench_splits.py --seeds 42 1 2 3 4 --out runs/splits [--adapter DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scripts.bench_learning_curve import BASELINE_KEY, FIGURES, _fmt  # noqa: E402  (the same figures, same format)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2, 3, 4],
                        help="build seeds (42: the quickstart's)")
    parser.add_argument("--out", default="runs/splits", help="where the builds go")
    parser.add_argument("--adapter", default="", help="a LoRA adapter folder (default: the base model)")
    parser.add_argument("--modes", nargs="+", default=["evidence", "fused"], help="readings to measure")
    args = parser.parse_args()

    import torch

    from dataset_builder.build_config import CPU_BUILD_CONFIG
    from answering.decision import MODEL_READING
    from dataset_builder.schema import load_built
    from evaluation.baselines import evaluate_baselines
    from evaluation.decisions import apply_reading, decide_rows, decision_metrics, tune_reading
    from rag_de.base_model import EMBEDDED_MODEL_ID
    from rag_de.modeling import (LoadQuantizationConfig, dequantize_4bit_on_cpu, load_adapter, load_causal_lm,
                                 load_tokenizer)

    tokenizer = load_tokenizer(EMBEDDED_MODEL_ID)
    model = load_causal_lm(EMBEDDED_MODEL_ID, LoadQuantizationConfig(kind="nf4", compute_dtype="float32"),
                           dtype="float32", device="cpu", tokenizer=tokenizer)
    if args.adapter:
        model = load_adapter(model, args.adapter)
    model.eval()
    dequantize_4bit_on_cpu(model)

    results: dict[str, list[dict]] = {mode: [] for mode in args.modes}
    results["bm25"] = []
    for seed in args.seeds:
        data = Path(args.out).resolve() / f"seed-{seed}"
        if not (data / "stats.json").exists():
            subprocess.run([sys.executable, "-m", "rag_de", "build", "--config", str(CPU_BUILD_CONFIG), "--seed",
                            str(seed), "--out", str(data)], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        splits = load_built(data)
        val, test = list(splits["validation"]), list(splits["test"])
        with torch.no_grad():
            read = {r: [decide_rows(model, tokenizer, rows, r, progress=f"seed {seed}: {r}, {name}")
                        for name, rows in (("validation", val), ("test", test))]
                    for r in dict.fromkeys(MODEL_READING[m] for m in args.modes)}
        for mode in args.modes:
            dv, dt = read[MODEL_READING[mode]]
            tuned = tune_reading(dv, val, mode, "validation")
            figures = decision_metrics(apply_reading(dt, test, tuned), test, tuned.refusal_threshold)
            results[mode].append({"seed": seed, **figures})
        bm25 = evaluate_baselines(test, val, "validation")["bm25"]
        results["bm25"].append({"seed": seed, **{f: bm25.get(BASELINE_KEY.get(f, f)) for f in FIGURES}})
        n_multi = sum(1 for r in test if r["answerable"] and len(r["contexts"]) >= 2)
        print(f"seed {seed}: validation {len(val)} rows, test {len(test)} rows "
              f"({sum(not r['answerable'] for r in test)} unanswerable, {n_multi} answerable with 2+ chunks)")
        for name in (*args.modes, "bm25"):
            figures = results[name][-1]
            print(f"  {name:<9}" + "  ".join(f"{f[:14]}={_fmt(figures.get(f))}" for f in FIGURES), flush=True)

    print(f"\nmean ± sd over {len(args.seeds)} split seeds (test split; thresholds tuned on validation)")
    print(f"{'reading':<10}" + "".join(f"{f[:24]:>26}" for f in FIGURES))
    for name in (*args.modes, "bm25"):
        cells = []
        for f in FIGURES:
            values = [r[f] for r in results[name] if r.get(f) is not None]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            cells.append(f"{statistics.fmean(values):.3f} ± {sd:.3f}" if values else "-")
        print(f"{name:<10}" + "".join(f"{c:>26}" for c in cells))
    for mode in args.modes:
        wins = sum(a["f1_gr"] > b["f1_gr"] for a, b in zip(results[mode], results["bm25"]))
        ties = sum(a["f1_gr"] == b["f1_gr"] for a, b in zip(results[mode], results["bm25"]))
        print(f"{mode}: F1-GR above BM25's on {wins} of {len(args.seeds)} splits, equal on {ties}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
