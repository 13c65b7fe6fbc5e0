#!/usr/bin/env python
"""Learning curve of the model's own answers: what a training recipe buys in the text the model writes.

One `rag-de train` run on the quickstart's build (checkpoints every `--every` steps; `--train-args` sets the
lever under test), then, for the base model (step 0) and every checkpoint, on the test split (first
`--rows`):

* free generation: gold-span recall, token F1, refusal F1, citation accuracy on 2+ chunk rows;
* the forced gold lead (`Laut Abschnitt [gold] (Titel):`, answerable rows): gold-span recall of what the
  model writes after it, beside the extracted sentence's at the same chunk (`answering.answer`).

The trivial rules (always [1], never refuse; BM25 top chunk) are printed beside them. Prints a table and
writes `answer_curve.json` to --out.

    python scripts/bench_answers.py --steps 30 --every 10 --out runs/answers-lr2e-3 \\
        --train-args --training.learning_rate 2e-3 --lora.r 16 --lora.alpha 32
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FREE = ("gold_span_recall", "token_f1", "refusal_f1", "citation_accuracy_multi")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=30, help="training steps of the run")
    parser.add_argument("--every", type=int, default=10, help="checkpoint (and measure) every N steps")
    parser.add_argument("--out", default="runs/answer-curve", help="run folder and results")
    parser.add_argument("--data", default=None, help="built dataset folder (default: the quickstart's build in --out)")
    parser.add_argument("--run", default=None, help="an existing run folder with checkpoints (skips training)")
    parser.add_argument("--rows", type=int, default=0, help="test rows measured (0 = all)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--skip-base", action="store_true", help="do not measure step 0 (the base model)")
    parser.add_argument("--train-args", nargs=argparse.REMAINDER, default=[], help="extra `rag-de train` flags")
    args = parser.parse_args()

    from dataset_builder.build_config import CPU_BUILD_CONFIG
    from training_space.config import CPU_PRESET

    out = Path(args.out).resolve()
    data = Path(args.data).resolve() if args.data else out / "data"
    if not (data / "stats.json").exists():
        subprocess.run([sys.executable, "-m", "rag_de", "build", "--config", str(CPU_BUILD_CONFIG), "--out",
                        str(data)], check=True, cwd=ROOT)
    run = Path(args.run).resolve() if args.run else out / "run"
    if not args.run and not (run / "train_summary.json").exists():
        subprocess.run([sys.executable, "-m", "rag_de", "train", "--config", str(CPU_PRESET), "--dataset", str(data),
                        "--output-dir", str(run), "--training.max_steps", str(args.steps),
                        "--training.save_steps", str(args.every), "--training.eval_steps", str(args.every),
                        "--training.save_total_limit", str(args.steps // args.every + 1),
                        "--training.load_best_model_at_end", "false", "--training.tune_decision", "false",
                        *args.train_args], check=True, cwd=ROOT)
    curve = measure(run, data, args.rows, args.max_new_tokens, args.skip_base)
    curve["train_args"] = args.train_args
    curve["baselines"] = baselines(data, args.rows)
    from rag_de.atomic import write_json

    write_json(out / "answer_curve.json", curve)
    print_table(curve)
    print(f"\nwrote {out / 'answer_curve.json'}")
    return 0


def measure(run: Path, data: Path, limit: int, max_new_tokens: int, skip_base: bool) -> dict:
    import time

    import torch
    from peft import PeftModel

    from answering.answer import extracted_answer, forced_lead, generated_answers
    from dataset_builder.contract import contexts_from_column, render_prompt_text
    from dataset_builder.schema import load_built
    from evaluation.answer_modes import mode_figures
    from evaluation.decisions import gold_number
    from evaluation.metrics import aggregate, score_example
    from rag_de.base_model import EMBEDDED_MODEL_ID
    from rag_de.modeling import LoadQuantizationConfig, dequantize_4bit_on_cpu, load_causal_lm, load_tokenizer

    test = list(load_built(data)["test"])
    test = test[:limit] if limit else test
    tokenizer = load_tokenizer(EMBEDDED_MODEL_ID)
    prompts = [render_prompt_text(tokenizer, r["question"], contexts_from_column(r["contexts"])) for r in test]
    gold = [i for i, r in enumerate(test) if r["answerable"]]
    leads = [forced_lead(gold_number(test[i]), contexts_from_column(test[i]["contexts"])[gold_number(test[i]) - 1])
             for i in gold]
    quant = LoadQuantizationConfig(kind="nf4", compute_dtype="float32")
    checkpoints = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    points = []
    for step, folder in ([] if skip_base else [(0, None)]) + [(int(p.name.split("-")[1]), p) for p in checkpoints]:
        started = time.perf_counter()
        model = load_causal_lm(EMBEDDED_MODEL_ID, quant, dtype="float32", device="cpu", tokenizer=tokenizer)
        if folder is not None:
            model = PeftModel.from_pretrained(model, str(folder))
        model.eval()
        dequantize_4bit_on_cpu(model)
        with torch.no_grad():
            free = generated_answers(model, tokenizer, prompts, [""] * len(prompts), max_new_tokens, 8,
                                     f"step {step}: free")
            forced = generated_answers(model, tokenizer, [prompts[i] for i in gold], leads, max_new_tokens, 8,
                                       f"step {step}: forced lead")
            extracted = [extracted_answer(lambda: model, tokenizer, test[i]["question"],
                                          contexts_from_column(test[i]["contexts"]), gold_number(test[i])) or ""
                         for i in gold]
        gold_rows = [test[i] for i in gold]
        point = {"step": step,
                 "free": aggregate([score_example(p, r) for p, r in zip(free, test)], test, free),
                 "forced_gold_lead": mode_figures(forced, gold_rows),
                 "extracted_gold_chunk": mode_figures(extracted, gold_rows),
                 "seconds": round(time.perf_counter() - started, 1),
                 "examples": {"free": free[:3], "forced": forced[:3]}}
        points.append(point)
        print_point(point, flush=True)
    return {"points": points, "rows": len(test), "answerable": len(gold)}


def baselines(data: Path, limit: int) -> dict:
    from dataset_builder.schema import load_built
    from evaluation.baselines import evaluate_baselines

    splits = load_built(data)
    test = list(splits["test"])
    return evaluate_baselines(test[:limit] if limit else test, list(splits["validation"]), "validation")


HEADER = (f"{'step':>5}  " + "  ".join(f"free {f[:18]:>18}" for f in FREE)
          + f"  {'forced-lead span':>16}  {'extracted span':>14}")


def print_point(point: dict, flush: bool = False) -> None:
    print(f"{point['step']:>5}  " + "  ".join(f"{_fmt(point['free'].get(f)):>23}" for f in FREE)
          + f"  {_fmt(point['forced_gold_lead']['gold_span_recall']):>16}"
          + f"  {_fmt(point['extracted_gold_chunk']['gold_span_recall']):>14}", flush=flush)


def print_table(curve: dict) -> None:
    print(f"\n{HEADER}   (test split, {curve['rows']} rows; train args: {' '.join(curve['train_args']) or '-'})")
    for point in curve["points"]:
        print_point(point)
    for name, figures in curve["baselines"].items():
        print(f"{name[:5]:>5}  " + "  ".join(f"{_fmt(figures.get(f)):>23}" for f in FREE))


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
