"""Example assembly: from a question and its BM25 hits to finished rows (contexts, answer, messages).

Per batch: each question is planned (`plan_question`: gold chunk, negatives, positions), the answer
writer answers the planned examples that have a gold chunk, every answer is checked (the extractive
one is the fallback), and each example becomes one row of the dataset's columns. Counts per split go
to stats.json, so a dataset's make-up is visible without reading it.
"""

from __future__ import annotations

from collections import Counter

from dataset_builder.answer_check import check_answer
from dataset_builder.build_config import BuildConfig
from dataset_builder.contract import REFUSAL, chat_messages, recite_answer
from dataset_builder.examples import Corpus, Planned, plan_counterfactuals, plan_example
from dataset_builder.records import Question, SkipLog
from dataset_builder.schema import variant_id
from dataset_builder.writers import extractive_answer
from dataset_builder.writers.base import WriteRequest


def new_split_stats(questions: list[Question], chunks: list[int]) -> dict:
    """A split's counts in stats.json; `add_rows` fills them in."""
    return {"examples": 0, "answerable": 0, "unanswerable": 0, "unanswerable_natural": 0,
            "unanswerable_removed_gold": 0, "random_negatives": 0, "chunks": len(chunks),
            "source_docs": len({q.group for q in questions}), "contexts_per_example": Counter()}


def plan_question(q: Question, gold: tuple[int, int] | None, remove_gold: bool, hits: list[int],
                  split_chunks: list[int], corpus: Corpus, config: BuildConfig, split: str) -> list[Planned]:
    """The examples one question yields, in row order: its own, then its counterfactual variants when
    the split asks for them (`config.counterfactuals`, `config.counterfactual_splits`).

    `hits` are chunk indices, best BM25 match first; `gold` is (chunk index, span offset) or None.
    """
    base = plan_example(q, gold, remove_gold, hits, split_chunks, corpus, config.seed, config.min_k, config.k)
    if not config.counterfactuals or split not in config.counterfactual_splits:
        return [base]
    return [base, *plan_counterfactuals(base, hits, corpus, config.seed, config.counterfactuals)]


def example_id(p: Planned) -> str:
    """The row id: the question's id, plus `#cf-<variant>` for a counterfactual (schema.variant_id)."""
    return variant_id(p.question.id, p.variant)


def write_answers(plans: list[Planned], corpus: Corpus, config: BuildConfig, writer,
                  fallbacks: Counter) -> list[str | None]:
    """The answer of each plan: the refusal, a checked answer, or None (no answer passed the check).

    The extractive answer is computed and checked for every answerable plan: it is the fallback when
    the writer (a model, an HTTP endpoint) fails or its answer fails the check (counted by reason).
    """
    requests, rows = [], []
    for i, p in enumerate(plans):
        if p.gold is not None:
            chunks = [corpus.chunks[c] for c in p.contexts]
            requests.append(WriteRequest(p.question.question, chunks, p.contexts.index(p.gold) + 1,
                                         p.question.gold_span, p.span_start))
            rows.append(i)
    answers: list[str | None] = []
    for req in requests:
        text = extractive_answer(req, config.cite_title)
        # by construction the sentence holds the span and cites [n]: verify that cheaply, and run the
        # full check only when the cheap one fails (e.g. the span was re-cased)
        cheap_ok = req.gold_span in text and f"[{req.gold_number}]" in text and text.count("[") == 1
        problem = None if cheap_ok else check_answer(text, req.gold_span, req.gold_number, len(req.contexts),
                                                     config.check.min_overlap, max_answer_words=10 ** 6)
        answers.append(text if problem is None else None)
    if writer.name != "extractive" and requests:
        for j, (req, text) in enumerate(zip(requests, writer.write(requests))):
            reason = "writer_error" if text is None else check_answer(
                text, req.gold_span, req.gold_number, len(req.contexts), config.check.min_overlap,
                config.check.max_answer_words)
            if reason is None:     # generated answers take the extractive form: source lead, one citation
                answers[j] = recite_answer(text, req.gold_number, req.gold_chunk.title if config.cite_title else None)
            else:
                fallbacks[reason] += 1
    out: list[str | None] = [REFUSAL] * len(plans)
    for i, answer in zip(rows, answers):
        out[i] = answer
    return out


def add_rows(plans: list[Planned], answers: list[str | None], corpus: Corpus, skips: SkipLog,
             stats: dict) -> list[dict]:
    """The dataset rows of the plans that have an answer and contexts; the others are skipped (logged)."""
    rows = []
    counts = stats["contexts_per_example"]
    for p, answer in zip(plans, answers):
        q = p.question
        if answer is None:
            skips.skip("extractive_check_failed", q.where,
                       "no answer passed the check (the extractive sentence lost the span or citation)")
            continue
        if p.gold is None and not p.contexts:
            skips.skip("no_negatives", q.where, "no chunk in the split can serve as context for a refusal",
                       "add more documents")
            continue
        gold_id = corpus.chunks[p.gold].id if p.gold is not None else None
        rows.append({"id": example_id(p), "question": q.question,
                     "contexts": [corpus.record(c) for c in p.contexts], "answer": answer,
                     "gold_chunk_id": gold_id, "answerable": gold_id is not None,
                     "gold_span": q.gold_span if gold_id is not None else "", "origin": q.origin,
                     "source_doc": q.group,
                     "messages": chat_messages(q.question, [corpus.chunks[c] for c in p.contexts], answer)})
        stats["examples"] += 1
        stats["answerable" if p.gold is not None else "unanswerable"] += 1
        if p.kind == "natural":
            stats["unanswerable_natural"] += 1
        elif p.kind == "removed_gold":
            stats["unanswerable_removed_gold"] += 1
        if p.variant:
            stats["counterfactual_" + p.variant] = stats.get("counterfactual_" + p.variant, 0) + 1
        stats["random_negatives"] += p.random_fill
        counts[len(p.contexts)] += 1
    return rows
