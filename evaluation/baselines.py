"""Trivial rules every evaluation reports beside base and adapter, so that a gain is a gain over them.

Each rule writes answers in the contract's form (`Laut Abschnitt [n] (title): sentence.` or exactly
`REFUSAL`), so the same `score_example` / `aggregate` score them as they score a model's generations:

* `always_cite_1`: never refuses (the issue's "never refuse" baseline is this rule) and cites chunk [1];
  the answer is the sentence of chunk 1 that shares the most words with the question.
* `always_refuse`: every answer is `REFUSAL`.
* `bm25`: cites the prompt chunk with the highest BM25 score for the question (ties: the lower number)
  and answers with its sentence that shares the most words with the question; refuses when its refusal
  score, minus that top score, is at or above a threshold tuned on the validation split by the adapter's
  own rule (`evaluation.thresholds.tune_threshold`: F1-GR, midpoints between observed scores, ties to
  fewer refusals), so both get the same chance. results.json records the threshold on the refusal-score
  scale and `top_score_cut` = minus it: the rule refuses when the top BM25 score is <= the cut.

Word overlap and BM25 use the project's German analyzer (`dataset_builder.retrieval.tokenize_de`,
`BM25Index`: stopword-free, Snowball-stemmed). The BM25 index holds the unique chunks (by id) of the split
being scored, each as the model reads it: `render_chunk` (title, source, metadata, text) without the
`[n]` number, which depends on the prompt position, not on the chunk. So IDF is that split's, and a
threshold tuned on validation is applied to test scores from test's own index (BM25 scores of two
corpora are close, not equal: the price of tuning on held-out data).

Refusal scores for `refusal_auc` (higher = refuse): minus the top BM25 score; the two constant rules get
a constant score (AUC 0.5: they rank nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from dataset_builder.chunking import sentence_spans
from dataset_builder.contract import REFUSAL, Chunk, contexts_from_column, format_answer, render_chunk
from answering.answer import word_overlap
from dataset_builder.retrieval import BM25Index
from evaluation.metrics import aggregate, score_example
from evaluation.thresholds import MAX_NEEDLESS_REFUSAL, tune_threshold

NAMES = ("always_cite_1", "always_refuse", "bm25")
LABELS = {"always_cite_1": "Always [1] (never refuses)", "always_refuse": "Always refuses",
          "bm25": "BM25 top chunk, tuned refusal threshold"}
# The split the BM25 threshold is tuned on (the objective is `evaluation.thresholds`': F1-GR).
TUNING_SPLIT = "validation"
# Queries per BM25 search call: each returns every chunk that shares a word with its question (exact
# scores for the prompt's chunks need them all), so a batch bounds the memory those hit lists take.
SEARCH_BATCH = 64


@dataclass
class BaselineRun:
    """A rule's answers for a split, its refusal scores (higher = refuse) and its threshold, if it has one."""

    predictions: list[str]
    refusal_scores: list[float]
    threshold: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _chunks(row: Mapping[str, Any]) -> list[Chunk]:
    return contexts_from_column(row["contexts"])


def best_sentence(question: str, chunk: Chunk) -> str:
    """The chunk's sentence sharing the most distinct (stemmed, stopword-free) words with the question.

    Ties go to the earlier sentence; a chunk without sentence boundaries is one sentence.
    """
    text = chunk.text
    sentences = [" ".join(text[s:e].split()) for s, e in sentence_spans(text)]
    sentences = [s for s in sentences if s] or [" ".join(text.split())]
    overlap = word_overlap(question, sentences)
    return sentences[overlap.index(max(overlap))]


def cited_answer(question: str, chunks: Sequence[Chunk], number: int) -> str:
    """`Laut Abschnitt [number] (title): <best sentence of that chunk>.`"""
    chunk = chunks[number - 1]
    return format_answer(best_sentence(question, chunk), number, chunk.title or None)


def always_cite_1(rows: Sequence[Mapping[str, Any]]) -> BaselineRun:
    preds = [cited_answer(r["question"], _chunks(r), 1) for r in rows]
    return BaselineRun(preds, [0.0] * len(rows))


def always_refuse(rows: Sequence[Mapping[str, Any]]) -> BaselineRun:
    return BaselineRun([REFUSAL] * len(rows), [1.0] * len(rows))


def index_text(chunk: Chunk) -> str:
    """The chunk as the prompt shows it (`render_chunk`), without its position-dependent `[n]`."""
    rendered = render_chunk(1, chunk)
    return rendered[len("[1]"):].lstrip()


def chunk_scores(rows: Sequence[Mapping[str, Any]]) -> list[list[float]]:
    """BM25 score of each prompt chunk for its row's question, over an index of the split's unique chunks."""
    unique: dict[str, Chunk] = {}
    for r in rows:
        for c in _chunks(r):
            unique.setdefault(c.id, c)
    if not unique:
        return [[] for _ in rows]
    position = {cid: i for i, cid in enumerate(unique)}
    index = BM25Index(index_text(c) for c in unique.values())
    out = []
    for start in range(0, len(rows), SEARCH_BATCH):   # every hit of a query (k = all chunks), a batch at a time
        batch = rows[start:start + SEARCH_BATCH]
        for r, found in zip(batch, index.search_many([r["question"] for r in batch], k=len(unique))):
            by_position = dict(found)                  # chunks absent from the hits scored 0
            out.append([float(by_position.get(position[c.id], 0.0)) for c in _chunks(r)])
    return out


def top_chunks(scores: Sequence[Sequence[float]]) -> list[tuple[int, float]]:
    """(1-based number, score) of each row's best chunk; ties go to the lower number."""
    out = []
    for row in scores:
        best = max(range(len(row)), key=lambda i: (row[i], -i)) if row else 0
        out.append((best + 1, row[best] if row else 0.0))
    return out


def bm25(rows: Sequence[Mapping[str, Any]], threshold: float) -> BaselineRun:
    """Cite the BM25 top chunk; refuse where the refusal score (minus the top score) is >= `threshold`."""
    tops = top_chunks(chunk_scores(rows))
    preds = [REFUSAL if -score >= threshold else cited_answer(r["question"], _chunks(r), number)
             for r, (number, score) in zip(rows, tops)]
    return BaselineRun(preds, [-score for _, score in tops], threshold, {"top_score_cut": -threshold})


def tuned_bm25(rows: Sequence[Mapping[str, Any]], tune_rows: Sequence[Mapping[str, Any]],
               max_needless: float = MAX_NEEDLESS_REFUSAL) -> BaselineRun:
    """`bm25` on `rows` with the threshold tuned on `tune_rows` (scored with their own index), by the
    adapter's rule (the same needless-refusal limit).

    No unanswerable row to tune on: the tuner's highest candidate, which refuses nothing there.
    """
    refusal_scores = [-score for _, score in top_chunks(chunk_scores(tune_rows))]
    threshold, value = tune_threshold(refusal_scores, [bool(r["answerable"]) for r in tune_rows], max_needless)
    run = bm25(rows, threshold)
    run.extra.update({"threshold_objective": "f1_gr", "threshold_f1_gr": value, "threshold_rows": len(tune_rows),
                      "max_needless_refusal": max_needless})
    return run


def score_run(run: BaselineRun, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The run's metrics from the same scorer as the models', plus its threshold."""
    scores = [score_example(p, r) for p, r in zip(run.predictions, rows)]
    return {**aggregate(scores, rows, run.predictions, refusal_scores=run.refusal_scores),
            "threshold": run.threshold, **run.extra}


def evaluate_baselines(rows: Sequence[Mapping[str, Any]], tune_rows: Sequence[Mapping[str, Any]],
                       threshold_split: str, note: str | None = None,
                       max_needless: float = MAX_NEEDLESS_REFUSAL) -> dict[str, dict]:
    """{name: {metrics..., threshold}} for every rule on `rows`; the BM25 threshold is tuned on `tune_rows`."""
    runs = {"always_cite_1": always_cite_1(rows), "always_refuse": always_refuse(rows),
            "bm25": tuned_bm25(rows, tune_rows, max_needless)}
    out = {name: score_run(run, rows) for name, run in runs.items()}
    out["bm25"].update({"threshold_split": threshold_split, "threshold_note": note})
    return out


def tuning_rows(dataset: str, split: str, revision: str | None,
                scored_rows: Sequence[Mapping[str, Any]]) -> tuple[Sequence[Mapping[str, Any]], str, str | None]:
    """(rows to tune on, their split, a note when they are not a separate validation split).

    The note names no path: results.json may be published.
    """
    from evaluation.data import EvalInputError, load_split

    if split == TUNING_SPLIT:
        return scored_rows, split, f"tuned on the scored split {split!r} itself (optimistic)"
    try:
        return load_split(dataset, TUNING_SPLIT, revision), TUNING_SPLIT, None
    except EvalInputError:
        return scored_rows, split, (f"the dataset has no usable {TUNING_SPLIT!r} split: tuned on the scored "
                                    f"split {split!r} itself (optimistic)")


__all__ = ["NAMES", "LABELS", "BaselineRun", "always_cite_1", "always_refuse", "bm25", "tuned_bm25",
           "chunk_scores", "top_chunks", "best_sentence", "evaluate_baselines", "tuning_rows"]
