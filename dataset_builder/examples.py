"""From questions and chunked documents to examples: gold chunk, hard negatives, refusals, positions.

Per question (all choices from a RNG seeded by (seed, question id), so results do not depend on order):
* answerable: the gold chunk plus up to m-1 hard negatives, m drawn from [min_k, k]; negatives are the
  best BM25 hits in the same split that are neither the gold chunk nor hold the gold span;
* unanswerable by removal (to reach `unanswerable_share`): m negatives, none from the question's own
  document and none holding the gold span; target = the refusal;
* unanswerable by nature (the QA file says so): m BM25 hits (often from the very module the question
  names, which makes the refusal hard); target = the refusal.
When BM25 finds too few hits, random chunks of the same split fill up (counted as `random_negatives`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

from dataset_builder.chunking import chunk_spans, span_text
from dataset_builder.contract import Chunk
from dataset_builder.records import Document, Question, SkipLog
from dataset_builder.retrieval import tokenize_de

RANDOM_FILL_TRIES = 64


@dataclass
class Corpus:
    """All chunks of all documents, with where each document's chunks lie."""

    chunks: list[Chunk] = field(default_factory=list)
    chunk_doc: list[int] = field(default_factory=list)      # chunk -> document position
    docs: list[Document] = field(default_factory=list)
    doc_pos: dict[str, int] = field(default_factory=dict)    # doc_id -> document position
    doc_first: list[int] = field(default_factory=list)       # document -> first chunk
    doc_spans: list[list] = field(default_factory=list)      # document -> chunk Spans
    _meta_json: dict[int, str] = field(default_factory=dict)  # document -> its metadata as JSON (shared)

    @classmethod
    def build(cls, docs: list[Document], max_tokens: int, count_tokens: Callable[[str], int],
              progress: bool = False) -> "Corpus":
        corpus = cls()
        iterator = docs
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(docs, desc="chunking", unit="doc", leave=False)
        for doc in iterator:
            spans = chunk_spans(doc.text, max_tokens, count_tokens)
            corpus.doc_pos[doc.doc_id] = len(corpus.docs)
            corpus.docs.append(doc)
            corpus.doc_first.append(len(corpus.chunks))
            corpus.doc_spans.append(spans)
            for n, span in enumerate(spans):
                corpus.chunks.append(Chunk(id=f"{doc.doc_id}#{n}", text=span_text(doc.text, span), title=doc.title,
                                           source=doc.source, metadata=doc.metadata))
                corpus.chunk_doc.append(len(corpus.docs) - 1)
        return corpus

    def metadata_json(self, c: int) -> str:
        """`Chunk.to_record()["metadata"]` of chunk `c`, encoded once per document (chunks share it)."""
        d = self.chunk_doc[c]
        meta = self._meta_json.get(d)
        if meta is None:
            meta = self._meta_json[d] = self.chunks[c].to_record()["metadata"]
        return meta

    def record(self, c: int) -> dict:
        """`Chunk.to_record()` of chunk `c` (the `contexts` column's form)."""
        chunk = self.chunks[c]
        return {"id": chunk.id, "title": chunk.title, "source": chunk.source, "text": chunk.text,
                "metadata": self.metadata_json(c)}

    def doc_chunk_range(self, doc_id: str) -> range:
        d = self.doc_pos[doc_id]
        return range(self.doc_first[d], self.doc_first[d] + len(self.doc_spans[d]))

    def locate_gold(self, q: Question) -> tuple[int, int] | None:
        """(chunk index, span offset in the chunk text) of the question's gold span, or None."""
        d = self.doc_pos[q.doc_id]
        first = self.doc_first[d]
        if q.answer_start is not None:
            end = q.answer_start + len(q.gold_span)
            for n, span in enumerate(self.doc_spans[d]):
                if span.start <= q.answer_start and end <= span.end:
                    prefix = len(span.heading) + 1 if span.heading else 0
                    return first + n, prefix + q.answer_start - span.start
            return None
        holders = [c for c in self.doc_chunk_range(q.doc_id) if q.gold_span in self.chunks[c].text]
        if not holders:
            return None
        if len(holders) > 1:   # the span occurs in several chunks: take the one closest to the question
            words = set(tokenize_de(q.question)[0])
            overlap = [len(words & set(t)) for t in tokenize_de([self.chunks[c].text for c in holders])]
            holders = [holders[overlap.index(max(overlap))]]
        return holders[0], self.chunks[holders[0]].text.find(q.gold_span)


@dataclass
class Planned:
    """One example before its answer is written."""

    question: Question
    contexts: list[int]        # chunk indices in prompt order
    gold: int | None           # chunk index of the gold chunk (None: refusal)
    span_start: int = -1
    kind: str = "answerable"   # answerable | removed_gold | natural
    random_fill: int = 0
    variant: str = ""          # "" = the question's own example; else a counterfactual (COUNTERFACTUALS)


def holds_span(text: str, span_folded: str) -> bool:
    return bool(span_folded) and span_folded in text.casefold()


def plan_example(q: Question, gold: tuple[int, int] | None, remove_gold: bool, hits: list[int],
                 split_chunks: list[int], corpus: Corpus, seed: int, min_k: int, k: int) -> Planned:
    rng = random.Random(f"{seed}:{q.id}")
    m = rng.randint(min_k, k)
    span_folded = q.gold_span.casefold()
    excluded: set[int] = set()
    if gold is not None:
        excluded.add(gold[0])
    if remove_gold and q.doc_id is not None:
        excluded.update(corpus.doc_chunk_range(q.doc_id))
    wanted = m if (gold is None or remove_gold) else m - 1
    negatives: list[int] = []
    for c in hits:
        if len(negatives) >= wanted:
            break
        if c in excluded or holds_span(corpus.chunks[c].text, span_folded):
            continue
        negatives.append(c)
    random_fill = 0
    tries = 0
    while len(negatives) < wanted and tries < RANDOM_FILL_TRIES and split_chunks:
        tries += 1
        c = split_chunks[rng.randrange(len(split_chunks))]
        if c in excluded or c in negatives or holds_span(corpus.chunks[c].text, span_folded):
            continue
        negatives.append(c)
        random_fill += 1
    if gold is None or remove_gold:
        contexts, gold_chunk, start = negatives, None, -1
        kind = "removed_gold" if remove_gold else "natural"
    else:
        contexts, gold_chunk, start, kind = [gold[0]] + negatives, gold[0], gold[1], "answerable"
    rng.shuffle(contexts)
    return Planned(q, contexts, gold_chunk, start, kind, random_fill)


def choose_removals(questions: list[Question], share: float, seed: int, split: str) -> set[str]:
    """Ids of answerable questions whose gold chunk is removed so the split reaches `share` refusals."""
    natural = sum(not q.answerable for q in questions)
    target = round(share * len(questions))
    answerable = [q.id for q in questions if q.answerable]
    n = min(len(answerable), max(0, target - natural))
    return set(random.Random(f"{seed}:{split}:unanswerable").sample(answerable, n))


def locate_all(questions: list[Question], corpus: Corpus, skips: SkipLog) -> dict[str, tuple[int, int] | None]:
    """Gold chunk per question; answerable questions whose span crosses a chunk boundary are skipped."""
    gold: dict[str, tuple[int, int] | None] = {}
    for q in questions:
        if not q.answerable:
            gold[q.id] = None
            continue
        found = corpus.locate_gold(q)
        if found is None:
            skips.skip("answer_crosses_chunks", q.where,
                       f"answer {q.gold_span!r} spans two chunks of {q.doc_id}",
                       "raise max_chunk_tokens or shorten the answer span")
            continue
        gold[q.id] = found
    return gold


# Counterfactual variants of one answerable example (BuildConfig.counterfactuals): the same question with
# the context changed so that only the context decides the target. Without them a model can score well by
# priors — cite [1], answer whenever the question names a known module — and never read the chunks; with
# them the same question has different targets, so those priors pay nothing.
COUNTERFACTUALS = ("moved", "removed")


def plan_counterfactuals(base: Planned, hits: list[int], corpus: Corpus, seed: int, kinds: Sequence[str]) -> list[Planned]:
    """`moved`: the gold chunk at another position (another [n]; a one-chunk example gets its best hard
    negative first); `removed`: the same contexts without the gold chunk, target the refusal (a one-chunk
    example keeps its best hard negative). The negatives are the base example's own, so the pair differs in
    the gold chunk alone."""
    if base.gold is None:
        return []
    rng = random.Random(f"{seed}:{base.question.id}:counterfactual")
    span_folded = base.question.gold_span.casefold()
    others = [c for c in base.contexts if c != base.gold]
    if not others:
        extra = next((c for c in hits if c != base.gold and c not in base.contexts
                      and not holds_span(corpus.chunks[c].text, span_folded)), None)
        if extra is None:
            return []
        others = [extra]
    out = []
    for kind in kinds:
        if kind == "moved":
            old = base.contexts.index(base.gold)
            positions = [i for i in range(len(others) + 1) if i != old]
            contexts = list(others)
            contexts.insert(rng.choice(positions), base.gold)
            out.append(Planned(base.question, contexts, base.gold, base.span_start, "answerable", 0, "moved"))
        elif kind == "removed":
            out.append(Planned(base.question, list(others), None, -1, "removed_gold", 0, "removed"))
    return out
