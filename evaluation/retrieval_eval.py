"""Retrieval quality of the demo's retriever: recall@k and MRR of BM25, dense and hybrid, side by side.

Why: every answer depends on the chunks retrieved, so the retriever is measured on its own. The
corpus is the split's unique context chunks (`demo_space.retrieval.unique_chunks`), the queries are
its answerable questions and the gold is each row's `gold_chunk_id`; no language model is needed
(BM25 takes a second; dense/hybrid only run when an encoder is given).
"""

from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

KS = (1, 3, 5, 10)
DEPTH = 100   # ranks looked at for MRR: a gold chunk below rank 100 counts as not found (reciprocal rank 0)


def ranking_metrics(rankings: Sequence[Sequence[str]], gold: Sequence[str], ks: Sequence[int] = KS) -> dict[str, Any]:
    """recall@k (share of queries whose gold id is in the top k) and MRR (mean of 1/rank of the gold id,
    0 when absent) over `rankings` (ids, best first), one per query."""
    if len(rankings) != len(gold):
        raise ValueError(f"{len(rankings)} rankings for {len(gold)} gold ids")
    n = len(gold)
    ranks = [list(r).index(g) + 1 if g in r else None for r, g in zip(rankings, gold)]
    out: dict[str, Any] = {f"recall@{k}": (sum(r is not None and r <= k for r in ranks) / n if n else None) for k in ks}
    out["mrr"] = sum(1.0 / r for r in ranks if r is not None) / n if n else None
    out["queries"] = n
    return out


def retrieval_queries(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
    """(questions, gold chunk ids) of the answerable rows."""
    picked = [r for r in rows if r.get("answerable") and r.get("gold_chunk_id")]
    return [r["question"] for r in picked], [r["gold_chunk_id"] for r in picked]


def evaluate_retrieval(chunks, questions: Sequence[str], gold: Sequence[str], encoder=None,
                       cache_dir: str | None = None, ks: Sequence[int] = KS) -> dict[str, Any]:
    """Figures of each retriever over `chunks` (BM25 always; dense and hybrid with an `encoder`)."""
    from demo_space.retrieval import ChunkIndex

    started = time.perf_counter()
    index = ChunkIndex(chunks, encoder, cache_dir)
    out: dict[str, Any] = {"corpus_chunks": len(index), "queries": len(questions),
                           "dense_model": getattr(encoder, "model_id", None), "fusion": "rrf (k=60)",
                           "index_seconds": round(time.perf_counter() - started, 3)}
    depth = max(max(ks), DEPTH)
    for mode in ("bm25", "dense", "hybrid"):
        if mode != "bm25" and encoder is None:
            out[mode] = None
            continue
        started = time.perf_counter()
        ranked = index.rank_many(questions, depth, mode)
        ids = [[index.chunks[i].id for i, _ in hits] for hits in ranked]
        out[mode] = {**ranking_metrics(ids, gold, ks),
                     "seconds": round(time.perf_counter() - started, 3)}
    return out


def split_retrieval(rows: Sequence[Mapping[str, Any]], encoder=None, cache_dir: str | None = None) -> dict[str, Any]:
    """`evaluate_retrieval` on a split's rows: its unique contexts as the corpus, its answerable questions."""
    from demo_space.retrieval import unique_chunks

    questions, gold = retrieval_queries(rows)
    return evaluate_retrieval(unique_chunks(r["contexts"] for r in rows), questions, gold, encoder, cache_dir)
