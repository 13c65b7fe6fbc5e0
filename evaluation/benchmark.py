"""How long does `rag-de evaluate` take here? Base + a fresh (untrained) adapter, nf4 vs none, one run.

    RAG_DE_CACHE=/tmp/ragcache python -m evaluation.benchmark --examples 40 --batch-size 8 --max-new-tokens 64

Builds a spaces-rag-de-shaped split from XQuAD-de (gold paragraph among distractors; a quarter of the
questions without their paragraph, so the target is the refusal), then evaluates it once per quantization
with an empty cache and prints the timings side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
from pathlib import Path

from dataset_builder.contract import REFUSAL, Chunk, chat_messages, format_answer
from rag_de.base_model import EMBEDDED_MODEL_ID

XQUAD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "xquad-de" / "xquad.de.part-a.json"


def xquad_rows(path: Path, n: int, chunks: int, chunk_words: int, seed: int = 0) -> list[dict]:
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    paragraphs = []
    for article in data:
        for i, p in enumerate(article["paragraphs"]):
            words = p["context"].split()
            if len(words) > chunk_words:
                continue  # keep whole paragraphs, so the gold span stays inside the chunk
            paragraphs.append((Chunk(id=f"{article['title']}-{i}", title=article["title"], text=p["context"],
                                     source="xquad-de"), p["qas"]))
    rng = random.Random(seed)
    rows = []
    for k in range(n):
        gold, qas = paragraphs[k % len(paragraphs)]
        qa = qas[0]
        others = rng.sample([c for c, _ in paragraphs if c.id != gold.id], chunks)
        answerable = k % 4 != 3
        context = others[: chunks - 1] + [gold] if answerable else others
        rng.shuffle(context)
        span = qa["answers"][0]["text"]
        answer = format_answer(f"Die Antwort lautet: {span}.", context.index(gold) + 1, gold.title) \
            if answerable else REFUSAL
        rows.append({"id": f"bench-{k}", "question": qa["question"], "contexts": [c.to_record() for c in context],
                     "answer": answer, "gold_chunk_id": gold.id if answerable else None, "answerable": answerable,
                     "gold_span": span if answerable else "", "origin": "xquad-de", "source_doc": gold.title,
                     "messages": chat_messages(qa["question"], context, answer)})
    return rows


def fresh_adapter(base: str, folder: Path) -> Path:
    """A LoRA adapter as training initialises it (B = 0: same outputs as the base, same compute)."""
    from peft import LoraConfig, get_peft_model

    from rag_de.modeling import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(base)
    model = load_causal_lm(base, tokenizer=tokenizer, device="cpu")
    peft_model = get_peft_model(model, LoraConfig(r=12, lora_alpha=10, target_modules="all-linear",
                                                  task_type="CAUSAL_LM"))
    peft_model.peft_config["default"].base_model_name_or_path = base
    peft_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    import datasets
    import torch

    from evaluation.config import EvalConfig
    from evaluation.runner import evaluate

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default=EMBEDDED_MODEL_ID)
    parser.add_argument("--examples", type=int, default=40)
    parser.add_argument("--chunks", type=int, default=3, help="context chunks per question")
    parser.add_argument("--chunk-words", type=int, default=120, help="longest paragraph used as a chunk")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--quantizations", default="nf4,none")
    parser.add_argument("--no-loss", action="store_true", help="skip the teacher-forced loss pass")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rag-de-bench-eval-"))
    rows = xquad_rows(XQUAD, args.examples, args.chunks, args.chunk_words)
    (work / "data").mkdir()
    datasets.Dataset.from_list(rows).to_parquet(str(work / "data" / "test.parquet"))
    adapter = fresh_adapter(args.base, work / "adapter")
    from rag_de.modeling import load_tokenizer
    from dataset_builder.contract import render_prompt_text, contexts_from_column

    tok = load_tokenizer(args.base)
    lengths = [len(tok(render_prompt_text(tok, r["question"], contexts_from_column(r["contexts"])),
                       add_special_tokens=False)["input_ids"]) for r in rows]
    print(f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, load avg {os.getloadavg()[0]:.1f}; "
          f"{len(rows)} examples, prompt tokens mean {sum(lengths) / len(lengths):.0f} max {max(lengths)}")
    table = []
    for quant in args.quantizations.split(","):
        config = EvalConfig(base=args.base, adapter=str(adapter), dataset=str(work / "data"), split="test",
                            out=str(work / f"out-{quant}"), batch_size=args.batch_size,
                            max_new_tokens=args.max_new_tokens, quantization=quant, compute_loss=not args.no_loss)
        started = time.perf_counter()
        results = evaluate(config)
        total = time.perf_counter() - started
        c = results["cache"]
        table.append((quant, total, c["base"]["generation_seconds"], c["adapter"]["generation_seconds"],
                      c["base"]["loss_seconds"] + c["adapter"]["loss_seconds"]))
    print(f"\n{'quant':<6}{'total s':>9}{'base gen s':>12}{'adapter gen s':>15}{'loss s':>9}{'s/example':>11}")
    for quant, total, bg, ag, ls in table:
        print(f"{quant:<6}{total:>9.1f}{bg:>12.1f}{ag:>15.1f}{ls:>9.1f}{total / len(rows):>11.2f}")
    if len(table) == 2:
        print(f"ratio {table[0][0]}/{table[1][0]} total time: {table[0][1] / table[1][1]:.2f}x")
    print(f"load avg now {os.getloadavg()[0]:.1f} (other processes share these cores)")


if __name__ == "__main__":
    main()
