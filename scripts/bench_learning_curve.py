#!/usr/bin/env python
"""Learning curve of the CPU preset: what more steps buy, in the decision figures that matter.

One `rag-de train` run (the CPU preset on the quickstart's build, checkpoints every `--every` steps), then
for each checkpoint the adapter's own decisions (dataset_builder/decision.py) on the validation split (the
refusal threshold is tuned there, as training does) and on the test split: refusal AUC, constrained
citation accuracy on 2+ chunk rows, refusal F1, needless refusals and F1-GR at the tuned threshold. The
trivial baselines (always [1], always refuse, BM25) are printed beside them. Prints a table, writes
`learning_curve.json` and `learning_curve.png` to --out.

    python scripts/bench_learning_curve.py --steps 40 --every 10 --out runs/learning-curve
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIGURES = ("refusal_auc", "constrained_citation_accuracy_multi", "refusal_f1", "needless_refusal_rate", "f1_gr")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="training steps of the run")
    parser.add_argument("--every", type=int, default=10, help="checkpoint (and measure) every N steps")
    parser.add_argument("--out", default="runs/learning-curve", help="run folder and results")
    parser.add_argument("--train-args", nargs="*", default=[], help="extra `rag-de train` flags")
    args = parser.parse_args()

    from dataset_builder.build_config import CPU_BUILD_CONFIG
    from training_space.config import CPU_PRESET

    out = Path(args.out).resolve()
    data = out / "data"
    if not (data / "stats.json").exists():
        subprocess.run([sys.executable, "-m", "rag_de", "build", "--config", str(CPU_BUILD_CONFIG), "--out",
                        str(data)], check=True, cwd=ROOT)
    run = out / "run"
    if not (run / "train_summary.json").exists():
        subprocess.run([sys.executable, "-m", "rag_de", "train", "--config", str(CPU_PRESET), "--dataset", str(data),
                        "--output-dir", str(run), "--training.max_steps", str(args.steps),
                        "--training.save_steps", str(args.every), "--training.eval_steps", str(args.every),
                        "--training.save_total_limit", str(args.steps // args.every + 1),
                        "--training.load_best_model_at_end", "false", *args.train_args], check=True, cwd=ROOT)
    curve = measure(run, data)
    curve["baselines"] = baselines(data)
    from rag_de.atomic import write_json

    write_json(out / "learning_curve.json", curve)
    plot(curve, out / "learning_curve.png")
    print_table(curve)
    print(f"\nwrote {out / 'learning_curve.json'} and {out / 'learning_curve.png'}")
    return 0


def measure(run: Path, data: Path) -> dict:
    """Decision figures of the base model (step 0) and of every checkpoint, on validation and test."""
    import torch

    from dataset_builder.schema import load_built
    from evaluation.decisions import decide_rows, decision_metrics
    from evaluation.thresholds import tune_threshold
    from peft import PeftModel
    from rag_de.base_model import EMBEDDED_MODEL_ID
    from rag_de.modeling import LoadQuantizationConfig, load_causal_lm, load_tokenizer

    splits = load_built(data)
    val, test = list(splits["validation"]), list(splits["test"])
    tokenizer = load_tokenizer(EMBEDDED_MODEL_ID)
    quant = LoadQuantizationConfig(kind="nf4", compute_dtype="float32")
    checkpoints = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    points = []
    for step, folder in [(0, None)] + [(int(p.name.split("-")[1]), p) for p in checkpoints]:
        model = load_causal_lm(EMBEDDED_MODEL_ID, quant, dtype="float32", device="cpu", tokenizer=tokenizer)
        if folder is not None:
            model = PeftModel.from_pretrained(model, str(folder))
        model.eval()
        with torch.no_grad():
            dv = decide_rows(model, tokenizer, val, progress=f"step {step}: validation")
            dt = decide_rows(model, tokenizer, test, progress=f"step {step}: test")
        threshold, _ = tune_threshold([d.refusal_score for d in dv], [bool(r["answerable"]) for r in val])
        points.append({"step": step, "threshold": threshold,
                       "validation": decision_metrics(dv, val, threshold), "test": decision_metrics(dt, test, threshold)})
    return {"points": points, "rows": {"validation": len(val), "test": len(test)}}


def baselines(data: Path) -> dict:
    from dataset_builder.schema import load_built
    from evaluation.baselines import evaluate_baselines

    splits = load_built(data)
    return evaluate_baselines(list(splits["test"]), list(splits["validation"]), "validation")


def print_table(curve: dict) -> None:
    print(f"\n{'step':>5}  " + "  ".join(f"{f[:22]:>22}" for f in FIGURES) + "   (test split; threshold tuned on validation)")
    for point in curve["points"]:
        print(f"{point['step']:>5}  " + "  ".join(f"{_fmt(point['test'].get(f)):>22}" for f in FIGURES))
    for name, figures in curve["baselines"].items():
        mapped = {"constrained_citation_accuracy_multi": "citation_accuracy_multi"}
        print(f"{name[:5]:>5}  " + "  ".join(f"{_fmt(figures.get(mapped.get(f, f))):>22}" for f in FIGURES))


def plot(curve: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["step"] for p in curve["points"]]
    fig, ax = plt.subplots(figsize=(7, 4))
    for figure in FIGURES:
        ax.plot(steps, [p["test"].get(figure) for p in curve["points"]], marker="o", label=figure)
    ax.set_xlabel("training steps (CPU preset)")
    ax.set_ylabel("test split")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
