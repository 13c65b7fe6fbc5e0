"""The demo's search over chunks (from the dataset or from uploads): BM25, optionally fused with a dense encoder.

The corpus is the set of unique context chunks in the dataset's splits: exactly the passages the
model saw during training and evaluation, each with its metadata. BM25 (the project's German index)
always runs; with a dense encoder (`demo_space.dense`) the two rankings are fused by reciprocal rank
fusion (RRF, k=60, as Haystack and LlamaIndex do), which needs no score calibration between them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable, Literal, Sequence

import numpy as np

from dataset_builder.contract import Chunk

if TYPE_CHECKING:
    from demo_space.dense import DenseEncoder

RRF_K = 60                 # reciprocal rank fusion constant (Cormack et al. 2009; Haystack, LlamaIndex)
FUSION_DEPTH = 100         # candidates each retriever hands to the fusion
QUERY_CHAR_LIMIT = 10_000  # a longer query is cut: no retriever gains from it, both pay for it
Mode = Literal["bm25", "dense", "hybrid"]
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass
class Hit:
    chunk: Chunk
    score: float
    method: str = "BM25"   # what the score is: BM25, cosine (dense) or RRF (hybrid)
    bm25: float | None = None   # the chunk's BM25 score (the `fused` decision reads it); 0: not in BM25's top

    def __post_init__(self):
        if self.bm25 is None:
            self.bm25 = self.score if self.method == "BM25" else 0.0


def clean_query(query: str | None) -> str:
    """The query as retrievers see it: control characters as spaces, NFC, at most `QUERY_CHAR_LIMIT`."""
    text = unicodedata.normalize("NFC", _CONTROL.sub(" ", query or ""))[:QUERY_CHAR_LIMIT]
    return text.strip()


def rrf_fuse(rankings: Sequence[Sequence[int]], k: int = RRF_K, limit: int | None = None) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: item -> sum over rankings of 1 / (k + rank), rank from 1; best first.

    Ties (same fused score) go to the item ranked best in any list, then to the lower item: a fixed order.
    """
    scores: dict[int, float] = {}
    best: dict[int, int] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            best[item] = min(best.get(item, rank), rank)
    order = sorted(scores, key=lambda i: (-scores[i], best[i], i))
    return [(i, scores[i]) for i in order[:limit]]


class ChunkIndex:
    """BM25 over chunk title + text (titles carry module names and codes people ask about), plus the
    chunks' dense embeddings when an `encoder` is given (cached in `cache_dir` per corpus revision)."""

    def __init__(self, chunks: Sequence[Chunk], encoder: "DenseEncoder | None" = None,
                 cache_dir: str | None = None):
        from dataset_builder.retrieval import BM25Index

        self.chunks = list(chunks)
        texts = [searchable_text(c) for c in self.chunks]
        self._bm25 = BM25Index(texts)
        self.encoder = encoder
        self.embeddings = None
        if encoder is not None and self.chunks:
            self.embeddings = encoder.encode_passages([c.id for c in self.chunks], texts, cache_dir)

    def __len__(self) -> int:
        return len(self.chunks)

    @property
    def mode(self) -> Mode:
        """What `search` does by default: hybrid with embeddings, else BM25."""
        return "hybrid" if self.embeddings is not None else "bm25"

    def search(self, query: str, k: int, mode: Mode | None = None) -> list[Hit]:
        """The k best chunks for `query`; empty for a query without words. `mode` defaults to `self.mode`."""
        mode = mode or self.mode
        scored = self.rank_many([query], k, mode)[0]
        if mode == "bm25":
            return [Hit(self.chunks[i], float(s)) for i, s in scored]
        lexical = dict(self._bm25.search(clean_query(query), FUSION_DEPTH)) if scored else {}
        method = "cos" if mode == "dense" else "RRF"
        return [Hit(self.chunks[i], float(s), method, float(lexical.get(i, 0.0))) for i, s in scored]

    def rank_many(self, queries: Sequence[str], k: int, mode: Mode | None = None) -> list[list[tuple[int, float]]]:
        """(position, score) of the k best chunks per query, batched (the evaluation ranks all at once)."""
        mode = mode or self.mode
        if mode != "bm25" and self.embeddings is None:
            raise ValueError(f"{mode} retrieval needs a dense encoder; this index has none (BM25 only)")
        cleaned = [clean_query(q) for q in queries]
        live = [i for i, q in enumerate(cleaned) if any(ch.isalnum() for ch in q)]
        results: list[list[tuple[int, float]]] = [[] for _ in queries]
        if not live or k <= 0 or not self.chunks:
            return results
        texts = [cleaned[i] for i in live]
        depth = k if mode == "bm25" else max(k, FUSION_DEPTH)
        bm25 = self._bm25.search_many(texts, depth) if mode != "dense" else None
        dense = self._dense_many(texts, depth) if mode != "bm25" else None
        for j, i in enumerate(live):
            if mode == "bm25":
                results[i] = bm25[j]
            elif mode == "dense":
                results[i] = dense[j][:k]
            else:
                results[i] = rrf_fuse([[p for p, _ in bm25[j]], [p for p, _ in dense[j]]], limit=k)
        return results

    def _dense_many(self, queries: Sequence[str], k: int) -> list[list[tuple[int, float]]]:
        """Cosine top-k per query (embeddings are unit length: a dot product), ties to the lower position.

        The product runs in torch, on the encoder's threads: numpy's BLAS threads spinning beside torch's
        made a 10k-chunk query 3-8x slower on 2 cores (p95 110 ms instead of ~15 ms).
        """
        import torch

        queries_emb = torch.from_numpy(self.encoder.encode_queries(queries))
        sims = (queries_emb @ torch.from_numpy(self.embeddings).T).numpy()
        k = min(k, sims.shape[1])
        out = []
        for row in sims:
            top = np.argpartition(-row, k - 1)[:k] if k < row.size else np.arange(row.size)
            top = top[np.lexsort((top, -row[top]))]
            out.append([(int(i), float(row[i])) for i in top])
        return out


def searchable_text(chunk: Chunk) -> str:
    fields = [chunk.title] + [str(v) for v in chunk.metadata.values() if isinstance(v, (str, int, float))]
    return " ".join(f for f in fields if f) + "\n" + chunk.text


def unique_chunks(context_lists: Iterable[Iterable[dict]]) -> list[Chunk]:
    """Chunks from a `contexts` column, first occurrence of each id kept, order stable."""
    seen: dict[str, Chunk] = {}
    for contexts in context_lists:
        for record in contexts or ():
            chunk = Chunk.from_record(record)
            seen.setdefault(chunk.id, chunk)
    return list(seen.values())


def load_corpus(dataset: str, revision: str | None = None) -> list[Chunk]:
    """All unique contexts of every split of `dataset` (Hub id or local folder) via `datasets`."""
    from datasets import load_dataset

    splits = load_dataset(dataset, revision=revision)
    chunks: dict[str, Chunk] = {}
    for name in splits:
        if "contexts" not in splits[name].column_names:
            raise ValueError(f"dataset {dataset} split {name!r} has no `contexts` column "
                             f"(columns: {splits[name].column_names}); build it with `rag-de build`")
        for chunk in unique_chunks(splits[name]["contexts"]):
            chunks.setdefault(chunk.id, chunk)
    return list(chunks.values())
