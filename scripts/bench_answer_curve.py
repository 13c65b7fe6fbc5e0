#!/usr/bin/env python
"""Answer learning curve: what more steps buy in the text the model writes itself (issue 21, item 2).

One `rag-de train` run on the quickstart's build (the CPU preset unless `--config` names another, with
`--train-args` for the lever under test), checkpoints every `--every` steps; then for the untrained base
model (step 0) and every checkpoint, on the test split:

* **free**: the model's own greedy answer from the prompt (it decides refuse/cite itself);
* **lead given**: the gold decision's lead forced (`Laut Abschnitt [gold] (Titel):`, the refusal for an
  unanswerable row) and the model's continuation: does it write the answer once it knows where to look?
* **extracted** (once, it needs no model): the gold chunk's sentence sharing the most question words, the
  rule the lead-given text has to beat.

Figures: gold-span recall, token F1, citation accuracy on 2+ chunk rows, refusal F1, faithfulness to the
cited chunk (`evaluation.metrics`); the trivial baselines (always [1], always refuse, BM25) beside them.
Prints a table, writes `answer_curve.json` to --out. A finished run or build in --out is reused.

    python scripts/bench_answer_curve.py --steps 120 --every 40 --out runs/answer-curve
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FIGURES = ("gold_span_recall", "token_f1", "citation_accuracy_multi", "refusal_f1", "faithfulness")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=120, help="training steps of the run")
    parser.add_argument("--every", type=int, default=40, help="checkpoint (and measure) every N steps")
    parser.add_argument("--out", default="runs/answer-curve", help="run folder and results")
    parser.add_argument("--config", default=None, help="TrainConfig YAML (default: the CPU preset)")
    parser.add_argument("--data", default=None, help="a built dataset folder (default: build the quickstart's)")
    parser.add_argument("--train-args", nargs="*", default=[], help="extra `rag-de train` flags (the lever)")
    parser.add_argument("--max-new-tokens", type=int, default=64, help="generation limit, as the quickstart's eval")
    parser.add_argument("--batch-size", type=int, default=8, help="prompts generated together")
    args = parser.parse_args()

    from dataset_builder.build_config import CPU_BUILD_CONFIG
    from training_space.config import CPU_PRESET

    out = Path(args.out).resolve()
    data = Path(args.data).resolve() if args.data else out / "data"
    if not (data / "stats.json").exists():
        subprocess.run([sys.executable, "-m", "rag_de", "build", "--config", str(CPU_BUILD_CONFIG), "--out",
                        str(data)], check=True, cwd=ROOT)
    run = out / "run"
    if not (run / "train_summary.json").exists():
        subprocess.run([sys.executable, "-m", "rag_de", "train", "--config", str(args.config or CPU_PRESET),
                        "--dataset", str(data), "--output-dir", str(run), "--training.max_steps", str(args.steps),
                        "--training.save_steps", str(args.every), "--training.eval_steps", str(args.steps),
                        "--training.save_total_limit", str(args.steps // args.every + 1),
                        "--training.load_best_model_at_end", "false", "--training.tune_decision", "false",
                        *args.train_args], check=True, cwd=ROOT)
    curve = measure(run, data, args.max_new_tokens, args.batch_size)
    curve["train_args"] = args.train_args
    curve["config"] = str(args.config or CPU_PRESET)
    curve["baselines"] = baselines(data)
    from rag_de.atomic import write_json

    write_json(out / "answer_curve.json", curve)
    print_table(curve)
    print(f"\nwrote {out / 'answer_curve.json'}")
    return 0


def measure(run: Path, data: Path, max_new_tokens: int, batch_size: int) -> dict:
    import torch
    from peft import PeftModel

    from answering.answer import extracted_answer, forced_lead, generated_answers
    from dataset_builder.contract import REFUSAL, contexts_from_column, render_prompt_text
    from dataset_builder.schema import load_built
    from evaluation.decisions import gold_number
    from evaluation.metrics import aggregate, score_example
    from rag_de.base_model import EMBEDDED_MODEL_ID
    from rag_de.modeling import LoadQuantizationConfig, load_causal_lm, load_tokenizer

    test = list(load_built(data)["test"])
    tokenizer = load_tokenizer(EMBEDDED_MODEL_ID)
    prompts = [render_prompt_text(tokenizer, r["question"], contexts_from_column(r["contexts"])) for r in test]
    gold = [gold_number(r) for r in test]
    leads = [forced_lead(g, contexts_from_column(r["contexts"])[g - 1]) if g else None for r, g in zip(test, gold)]
    answerable = [i for i, lead in enumerate(leads) if lead is not None]

    def figures(predictions: list[str]) -> dict:
        scores = [score_example(p, r) for p, r in zip(predictions, test)]
        full = aggregate(scores, test, predictions)
        return {f: full.get(f) for f in FIGURES}

    quant = LoadQuantizationConfig(kind="nf4", compute_dtype="float32")
    checkpoints = sorted(run.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    points, extracted = [], None
    for step, folder in [(0, None)] + [(int(p.name.split("-")[1]), p) for p in checkpoints]:
        model = load_causal_lm(EMBEDDED_MODEL_ID, quant, dtype="float32", device="cpu", tokenizer=tokenizer)
        if folder is not None:
            model = PeftModel.from_pretrained(model, str(folder))
        model.eval()
        with torch.no_grad():
            if extracted is None:    # the rule: the same for every step (the model only breaks word-overlap ties)
                extracted = [REFUSAL] * len(test)
                for i in answerable:
                    chunks = contexts_from_column(test[i]["contexts"])
                    extracted[i] = extracted_answer(lambda: model, tokenizer, test[i]["question"], chunks, gold[i]) \
                        or f"{leads[i]} {chunks[gold[i] - 1].text}"
            free = generated_answers(model, tokenizer, prompts, [""] * len(prompts), max_new_tokens, batch_size,
                                     f"step {step}: free")
            given = [REFUSAL] * len(test)
            texts = generated_answers(model, tokenizer, [prompts[i] for i in answerable],
                                      [leads[i] for i in answerable], max_new_tokens, batch_size,
                                      f"step {step}: lead given")
            for i, text in zip(answerable, texts):
                given[i] = text
        point = {"step": step, "free": figures(free), "lead_given": figures(given),
                 "examples": [{"id": test[i]["id"], "free": free[i], "lead_given": given[i]} for i in answerable[:3]]}
        points.append(point)
        print_point(point)
        del model
    return {"points": points, "extracted_gold_chunk": figures(extracted), "rows": len(test),
            "answerable": len(answerable)}


def baselines(data: Path) -> dict:
    from dataset_builder.schema import load_built
    from evaluation.baselines import evaluate_baselines

    splits = load_built(data)
    return evaluate_baselines(list(splits["test"]), list(splits["validation"]), "validation")


def print_point(point: dict) -> None:
    for kind in ("free", "lead_given"):
        print(f"{point['step']:>5}  {kind:<11}" + "  ".join(f"{_fmt(point[kind].get(f)):>24}" for f in FIGURES),
              flush=True)


def print_table(curve: dict) -> None:
    print(f"\n{'step':>5}  {'answers':<11}" + "  ".join(f"{f[:24]:>24}" for f in FIGURES) + "   (test split)")
    for point in curve["points"]:
        print_point(point)
    rows = {"extracted": curve["extracted_gold_chunk"], **curve["baselines"]}
    for name, figures in rows.items():
        print(f"{'-':>5}  {name[:11]:<11}" + "  ".join(f"{_fmt(figures.get(f)):>24}" for f in FIGURES))


def _fmt(value) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:.3f}"


if __name__ == "__main__":
    sys.exit(main())
