"""German BM25 retrieval (bm25s + Snowball German stemmer), shared by the dataset builder and the demo.

The builder uses it to find hard negatives (chunks that look relevant but do not hold the answer); the
demo uses the same index to retrieve chunks for a user's question, so training and inference see the
same kind of neighbours.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np

STEMMER_LANGUAGE = "german"
TOKEN_RE = re.compile(r"(?u)\b\w+\b")  # keep 1-char tokens: numbers like "5" (ECTS) and "3" (semester) matter
STEM_CACHE_LIMIT = 2_000_000            # words; the cache is cleared when a long-lived process exceeds it

_stemmer = None
_stopwords: frozenset[str] | None = None
_stem_cache: dict[str, str | None] = {}   # lower-cased word -> stem, None for a stopword


def _setup():
    global _stemmer, _stopwords
    if _stemmer is None:
        import Stemmer
        from bm25s.stopwords import STOPWORDS_GERMAN

        _stemmer = Stemmer.Stemmer(STEMMER_LANGUAGE)
        _stopwords = frozenset(STOPWORDS_GERMAN)
    return _stemmer, _stopwords


def tokenize_de(texts: str | Sequence[str]) -> list[list[str]]:
    """Lower-cased, stopword-free (bm25s' German list), Snowball-stemmed tokens, one list per text.

    Each distinct word is stemmed once per process (a dict cache), which makes tokenizing 100k texts
    several times faster than `bm25s.tokenize`, and gives the same tokens for index and queries.
    """
    stemmer, stopwords = _setup()
    if isinstance(texts, str):
        texts = [texts]
    global _stem_cache
    find = TOKEN_RE.findall
    words = [find(text.lower()) for text in texts]
    cache = _stem_cache
    missing = list({w for ws in words for w in ws if w not in cache})
    if missing:
        if len(cache) + len(missing) > STEM_CACHE_LIMIT:
            cache = {w: cache[w] for ws in words for w in ws if w in cache}   # threads keep the old dict
            _stem_cache = cache
        for word, stem in zip(missing, stemmer.stemWords(missing)):
            cache[word] = None if word in stopwords else stem
    get = cache.__getitem__
    return [[s for s in map(get, ws) if s is not None] for ws in words]


def default_threads() -> int:
    """Threads for batched search: all cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class BM25Index:
    """A BM25 index over `texts`; results are (position in `texts`, score), best first, score > 0."""

    def __init__(self, texts: Sequence[str], k1: float = 1.5, b: float = 0.75, show_progress: bool = False):
        import bm25s

        self.size = len(texts)
        self._bm25 = bm25s.BM25(k1=k1, b=b)
        if self.size:
            self._bm25.index(tokenize_de(texts), show_progress=show_progress)
        self._vocab = self._bm25.vocab_dict if self.size else {}
        scores = self._bm25.scores if self.size else {}
        self._data = np.asarray(scores.get("data", []), dtype=np.float32)
        self._indices = np.asarray(scores.get("indices", []), dtype=np.int64)
        self._indptr = np.asarray(scores.get("indptr", [0]), dtype=np.int64)

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int, n_threads: int | None = None,
                    show_progress: bool = False) -> list[list[tuple[int, float]]]:
        """Batched search: one tokenizer pass for all queries, then top-k per query (`n_threads` workers;
        `None` = 1, since the per-query work is short and holds the GIL part of the time).

        Scoring reads bm25s' precomputed (token -> doc, score) matrix directly: a query's score vector
        is one `bincount` over its tokens' postings, and only documents that share a token are ranked
        (sparse path), which is several times faster than `BM25.retrieve` on large corpora.
        """
        if not queries:
            return []
        token_ids = [self._token_ids(toks) for toks in tokenize_de(queries)]
        threads = n_threads if n_threads is not None else 1
        if threads <= 1 or len(queries) < 64:
            return [self._top_k(ids, k) for ids in tqdm_if(token_ids, show_progress)]
        from concurrent.futures import ThreadPoolExecutor

        step = max(16, len(queries) // (threads * 8))
        batches = [token_ids[i:i + step] for i in range(0, len(token_ids), step)]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            parts = pool.map(lambda batch: [self._top_k(ids, k) for ids in batch], batches)
            return [hits for part in tqdm_if(parts, show_progress, total=len(batches)) for hits in part]

    def _token_ids(self, tokens: list[str]) -> np.ndarray:
        vocab = self._vocab
        return np.fromiter((vocab[t] for t in tokens if t in vocab), dtype=np.int64)

    def _top_k(self, ids: np.ndarray, k: int) -> list[tuple[int, float]]:
        if ids.size == 0 or k <= 0 or self.size == 0:
            return []
        data, indices, indptr = self._data, self._indices, self._indptr
        if ids.size == 1:
            docs, weights = indices[indptr[ids[0]]:indptr[ids[0] + 1]], data[indptr[ids[0]]:indptr[ids[0] + 1]]
        else:
            docs = np.concatenate([indices[indptr[t]:indptr[t + 1]] for t in ids])
            weights = np.concatenate([data[indptr[t]:indptr[t + 1]] for t in ids])
        if docs.size == 0:
            return []
        if docs.size * 4 < self.size:     # few candidates: rank only documents sharing a token
            candidates, inverse = np.unique(docs, return_inverse=True)
            scores = np.bincount(inverse, weights=weights)
        else:
            candidates = None
            scores = np.bincount(docs, weights=weights, minlength=self.size)
        n = min(k, scores.size)
        top = np.argpartition(-scores, n - 1)[:n] if n < scores.size else np.arange(scores.size)
        # best first; ties broken by document position so results never depend on thread timing
        top = top[np.lexsort((top if candidates is None else candidates[top], -scores[top]))]
        top = top[scores[top] > 0]
        doc_ids = top if candidates is None else candidates[top]
        return list(zip(doc_ids.tolist(), scores[top].astype(np.float32).tolist()))


def tqdm_if(iterable, show: bool, **kwargs):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc="BM25", unit="batch", **kwargs)
