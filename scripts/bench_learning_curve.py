#!/usr/bin/env python
"""Learning curve of the CPU preset: what more steps buy, in the decision figures that matter.

One `rag-de train` run (the CPU preset on the quickstart's build, checkpoints every `--every` steps), then
for each checkpoint the adapter's own decisions (answering/decision.py), per reading (lead, evidence,
fused), on the validation split (the refusal threshold is tuned there, as training does) and on the test
split: refusal AUC, constrained citation accuracy on 2+ chunk rows, refusal F1, needless refusals and
F1-GR at the tuned threshold. The trivial baselines (always [1], always refuse, BM25) are printed beside
them. Prints a table, writes `learning_curve.json` and `learning_curve.png` to --out.

    python scripts/bench_learning_curve.py --steps 40 --every 20 --out runs/learning-curve
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
# The baselines' results name the citation figure without "constrained" (a rule has nothing to constrain).
BASELINE_KEY = {"constrained_citation_accuracy_multi": "citation_accuracy_multi"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40, help="training steps of the run")
    parser.add_argument("--every", type=int, default=10, help="checkpoint (and measure) every N steps")
    parser.add_argument("--out", default="runs/learning-curve", help="run folder and results")
    parser.add_argument("--train-args", nargs="*", default=[], help="extra `rag-de train` flags")
    parser.add_argument("--modes", nargs="+", default=["lead", "evidence", "fused"],
                        help="decision readings to measure (answering.decision.DECISION_MODES)")
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
                        "--training.load_best_model_at_end", "false", "--training.tune_decision", "false",
                        *args.train_args], check=True, cwd=ROOT)
    curve = measure(run, data, args.modes)
    curve["baselines"] = baselines(data)
    from rag_de.atomic import write_json

    write_json(out / "learning_curve.json", curve)
    plot(curve, out / "learning_curve.png")
    print_table(curve)
    print(f"\nwrote {out / 'learning_curve.json'} and {out / 'learning_curve.png'}")
    return 0


def measure(run: Path, data: Path, modes: list[str]) -> dict:
    """Decision figures of the base model (step 0) and of every checkpoint, per reading, on validation (where
    each reading's threshold is tuned, as training does) and test (at that threshold)."""
    import torch

    from answering.decision import MODEL_READING
    from dataset_builder.schema import load_built
    from evaluation.decisions import apply_reading, decide_rows, decision_metrics, tune_reading
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
        read = {}
        with torch.no_grad():
            for reading in dict.fromkeys(MODEL_READING[m] for m in modes):
                read[reading] = tuple(decide_rows(model, tokenizer, rows, reading,
                                                  progress=f"step {step}: {reading}, {name}")
                                      for name, rows in (("validation", val), ("test", test)))
        point = {"step": step}
        for mode in modes:
            dv, dt = read[MODEL_READING[mode]]
            tuned = tune_reading(dv, val, mode, "validation")
            point[mode] = {"threshold": tuned.refusal_threshold,
                           "validation": decision_metrics(apply_reading(dv, val, tuned), val, tuned.refusal_threshold),
                           "test": decision_metrics(apply_reading(dt, test, tuned), test, tuned.refusal_threshold)}
        points.append(point)
        print_point(point, modes)
    return {"points": points, "modes": modes, "rows": {"validation": len(val), "test": len(test)}}


def baselines(data: Path) -> dict:
    from dataset_builder.schema import load_built
    from evaluation.baselines import evaluate_baselines

    splits = load_built(data)
    return evaluate_baselines(list(splits["test"]), list(splits["validation"]), "validation")


def print_point(point: dict, modes: list[str]) -> None:
    for mode in modes:
        print(f"{point['step']:>5}  {mode:<9}" + "  ".join(f"{_fmt(point[mode]['test'].get(f)):>22}" for f in FIGURES),
              flush=True)


def print_table(curve: dict) -> None:
    print(f"\n{'step':>5}  {'reading':<9}" + "  ".join(f"{f[:22]:>22}" for f in FIGURES)
          + "   (test split; thresholds tuned on validation)")
    for point in curve["points"]:
        print_point(point, curve["modes"])
    for name, figures in curve["baselines"].items():
        print(f"{'-':>5}  {name[:9]:<9}" + "  ".join(f"{_fmt(figures.get(BASELINE_KEY.get(f, f))):>22}" for f in FIGURES))


def plot(curve: dict, path: Path) -> None:
    """One panel per reading: the test figures against steps, the BM25 rule's as dotted lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [p["step"] for p in curve["points"]]
    modes = curve["modes"]
    fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 4), squeeze=False)
    bm25 = curve["baselines"].get("bm25", {})
    for ax, mode in zip(axes[0], modes):
        for i, figure in enumerate(FIGURES):
            color = f"C{i}"
            ax.plot(steps, [p[mode]["test"].get(figure) for p in curve["points"]], marker="o", label=figure, color=color)
            value = bm25.get(BASELINE_KEY.get(figure, figure))
            if isinstance(value, (int, float)):
                ax.axhline(value, color=color, linestyle=":", linewidth=1)
        ax.set_title(f"{mode} reading (dotted: BM25 rule)")
        ax.set_xlabel("training steps (CPU preset)")
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test split")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
