"""German BM25 retrieval (bm25s + Snowball German stemmer), shared by the dataset builder and the demo.

The builder uses it to find hard negatives (chunks that look relevant but do not hold the answer); the
demo uses the same index to retrieve chunks for a user's question, so training and inference see the
same kind of neighbours.

The index is built by bm25s' public `BM25.index` (Lucene BM25, its German stopword list) from token
ids made here: each distinct word is stemmed once per process, several times faster than
`bm25s.tokenize`. Search reads the score matrix bm25s builds (`BM25.scores`) directly, because
`BM25.retrieve` is several times slower on the builder's 100k questions and breaks score ties in no
fixed order (the dataset must not change between runs).
"""

from __future__ import annotations

import os
import re
import threading
from itertools import chain
from typing import Iterable, Sequence

import numpy as np

STEMMER_LANGUAGE = "german"
TOKEN_RE = re.compile(r"(?u)\b\w+\b")  # keep 1-char tokens: numbers like "5" (ECTS) and "3" (semester) matter
STEM_CACHE_LIMIT = 2_000_000            # words; the cache is cleared when a long-lived process exceeds it
QUERY_WORD_LIMIT = 200_000              # query-only words remembered per index (a demo runs for long)

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


def _stem_all(words: Iterable[str]) -> dict[str, str | None]:
    """The stem cache, holding every word of `words` (each distinct word is stemmed once per process)."""
    global _stem_cache
    stemmer, stopwords = _setup()
    cache = _stem_cache
    missing = [w for w in dict.fromkeys(words) if w not in cache]
    if missing:
        if len(cache) + len(missing) > STEM_CACHE_LIMIT:
            cache = {}                      # threads still reading the old dict keep it
            _stem_cache = cache
        for word, stem in zip(missing, stemmer.stemWords(missing)):
            cache[word] = None if word in stopwords else stem
    return cache


def tokenize_de(texts: str | Sequence[str]) -> list[list[str]]:
    """Lower-cased, stopword-free (bm25s' German list), Snowball-stemmed tokens, one list per text.

    Each distinct word is stemmed once per process (a dict cache), which makes tokenizing 100k texts
    several times faster than `bm25s.tokenize`, and gives the same tokens for index and queries.
    """
    if isinstance(texts, str):
        texts = [texts]
    find = TOKEN_RE.findall
    words = [find(text.lower()) for text in texts]
    cache = _stem_all(chain.from_iterable(words))
    get = cache.__getitem__
    return [[s for s in map(get, ws) if s is not None] for ws in words]


def default_threads() -> int:
    """Threads for batched search: all cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


class _WordIds(dict):
    """Lower-cased word -> token id (-1: stopword, or a stem the index does not hold).

    A word seen for the first time is stemmed on demand (`__missing__`), so mapping a text to ids is
    one dict lookup per word. While indexing (`grow`), new stems get the next id; afterwards the
    vocabulary is fixed and query-only words are remembered up to `QUERY_WORD_LIMIT`.
    """

    def __init__(self, vocab: dict[str, int], grow: bool):
        super().__init__()
        self.vocab, self.grow = vocab, grow

    def __missing__(self, word: str) -> int:
        stem = _stem_all((word,))[word]
        if stem is None:
            tid = -1
        elif self.grow:
            tid = self.vocab.setdefault(stem, len(self.vocab))
        else:
            tid = self.vocab.get(stem, -1)
        if self.grow or len(self) < QUERY_WORD_LIMIT:
            self[word] = tid
        return tid


class BM25Index:
    """A BM25 index over `texts`; results are (position in `texts`, score), best first, score > 0.

    `texts` may be any iterable (e.g. a generator): it is read once.
    """

    def __init__(self, texts: Iterable[str], k1: float = 1.5, b: float = 0.75, show_progress: bool = False):
        import bm25s

        self._vocab: dict[str, int] = {}        # stem -> token id
        word_ids, find = _WordIds(self._vocab, grow=True), TOKEN_RE.findall
        get = word_ids.__getitem__
        corpus_ids = [[i for i in map(get, find(text.lower())) if i >= 0] for text in texts]
        word_ids.grow = False                   # the vocabulary is fixed from here on
        self._word_ids = word_ids
        self.size = len(corpus_ids)
        scores: dict = {}
        if self.size:
            bm25 = bm25s.BM25(k1=k1, b=b)
            with np.errstate(invalid="ignore"):  # a text without words scores 0/0 for no token: harmless
                bm25.index((corpus_ids, self._vocab), create_empty_token=False, show_progress=show_progress)
            scores = bm25.scores
        del corpus_ids
        self._data = np.asarray(scores.get("data", []), dtype=np.float32)
        self._indices = np.asarray(scores.get("indices", []), dtype=np.int32)
        self._indptr = np.asarray(scores.get("indptr", [0]), dtype=np.int64)
        self._ptr = self._indptr.tolist()       # Python ints: ~5x faster to index one at a time
        self._local = threading.local()

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        return self.search_many([query], k)[0]

    def search_many(self, queries: Sequence[str], k: int, n_threads: int | None = None,
                    show_progress: bool = False) -> list[list[tuple[int, float]]]:
        """Batched search: one tokenizer pass for all queries, then top-k per query (`n_threads` workers;
        `None` or 1: the calling thread; 0: one per core). Results do not depend on the thread count.

        Scoring reads the (token -> doc, score) matrix directly, which is several times faster than
        `BM25.retrieve` on large corpora: a query's postings are added into a dense per-thread score
        buffer (`np.add.at`, in query-token order, float64: the sums `bincount` would give), only the
        documents among the best `k * tokens` postings can be in the top k, and the buffer is reset
        through the same postings, so nothing per query is proportional to the corpus size.
        """
        if not queries:
            return []
        token_ids = self._query_ids(queries)
        threads = default_threads() if n_threads == 0 else (n_threads or 1)
        if threads <= 1 or len(queries) < 64 or self.size == 0:
            buffer = self._buffer()
            return [self._top_k(ids, k, buffer) for ids in tqdm_if(token_ids, show_progress)]
        from concurrent.futures import ThreadPoolExecutor

        step = max(16, len(queries) // (threads * 8))
        batches = [token_ids[i:i + step] for i in range(0, len(token_ids), step)]

        def run(batch):
            buffer = self._buffer()
            return [self._top_k(ids, k, buffer) for ids in batch]

        with ThreadPoolExecutor(max_workers=threads) as pool:
            parts = pool.map(run, batches)
            return [hits for part in tqdm_if(parts, show_progress, total=len(batches)) for hits in part]

    def _buffer(self) -> np.ndarray:
        """A zeroed score per document, reused across queries (each thread has its own)."""
        local = self._local
        buffer = getattr(local, "buffer", None)
        if buffer is None or buffer.size != self.size:
            buffer = local.buffer = np.zeros(self.size, dtype=np.float64)
        return buffer

    def _query_ids(self, queries: Sequence[str]) -> list[list[int]]:
        """Token ids per query (words missing from the index dropped), in the query's word order."""
        find, get = TOKEN_RE.findall, self._word_ids.__getitem__
        return [[i for i in map(get, find(q.lower())) if i >= 0] for q in queries]

    def _top_k(self, ids: list[int], k: int, buffer: np.ndarray) -> list[tuple[int, float]]:
        """The k best documents by (score desc, position asc); exact, ties included."""
        n = len(ids)
        if n == 0 or k <= 0 or self.size == 0:
            return []
        data, indices, ptr = self._data, self._indices, self._ptr
        if n == 1:
            docs = indices[ptr[ids[0]]:ptr[ids[0] + 1]].astype(np.intp)   # intp: fancy indexing is 2x faster
            weights = data[ptr[ids[0]]:ptr[ids[0] + 1]].astype(np.float64)
        else:
            docs = np.concatenate([indices[ptr[t]:ptr[t + 1]] for t in ids], dtype=np.intp)
            weights = np.concatenate([data[ptr[t]:ptr[t + 1]] for t in ids], dtype=np.float64)
        if docs.size == 0:
            return []
        np.add.at(buffer, docs, weights)     # per document, in posting order: ((0 + w1) + w2) + ...
        try:
            totals = buffer[docs]            # each posting's document total
            m = k * n                        # a document fills at most n postings: the k best documents
            best = docs                      # are among the postings whose total reaches the m-th best
            if docs.size > m:
                best = docs[totals >= np.partition(totals, docs.size - m)[docs.size - m]]
            candidates = np.sort(best)
            if candidates.size > 1:
                candidates = candidates[np.concatenate(([True], candidates[1:] != candidates[:-1]))]
            scores = buffer[candidates]
        finally:
            buffer[docs] = 0.0               # reset exactly what this query touched
        top = np.argsort(-scores, kind="stable")[:k]    # candidates ascend: ties go to the lower position
        if top.size and not scores[top[-1]] > 0:
            top = top[scores[top] > 0]
        return list(zip(candidates[top].tolist(), scores[top].astype(np.float32).tolist()))


def tqdm_if(iterable, show: bool, **kwargs):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc="BM25", unit="batch", **kwargs)
