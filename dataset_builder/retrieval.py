"""German BM25 retrieval (bm25s + Snowball German stemmer), shared by the dataset builder and the demo.

The builder uses it to find hard negatives (chunks that look relevant but do not hold the answer); the
demo uses the same index to retrieve chunks for a user's question, so training and inference see the
same kind of neighbours.

The index is a `bm25s.BM25` (Lucene BM25, bm25s' scoring functions and its German stopword list) whose
score matrix is assembled with whole-array numpy operations instead of bm25s' per-document Python loops:
bm25s keeps every document as a Python list of Python ints plus a `Counter` per document, which for
50k chunks costs ~300 MB and most of the build's indexing time. Texts are tokenized in blocks, so
neither the texts nor their token lists need to exist all at once. The matrix is the same one bm25s
builds (a test compares them).
"""

from __future__ import annotations

import os
import re
import threading
from itertools import chain, islice
from types import SimpleNamespace
from typing import Iterable, Sequence

import numpy as np

STEMMER_LANGUAGE = "german"
TOKEN_RE = re.compile(r"(?u)\b\w+\b")  # keep 1-char tokens: numbers like "5" (ECTS) and "3" (semester) matter
STEM_CACHE_LIMIT = 2_000_000            # words; the cache is cleared when a long-lived process exceeds it
INDEX_BLOCK = 2048                      # texts tokenized at a time while indexing (bounds the token lists)
INDEX_STEP = 1 << 18                    # postings scored and placed at a time (bounds the temporaries)
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


class _FlatCorpus:
    """A tokenized corpus as flat arrays: (doc, token id, term frequency) triples and document lengths."""

    def __init__(self, docs: np.ndarray, tokens: np.ndarray, tf: np.ndarray, lengths: np.ndarray):
        self.docs, self.tokens, self.tf, self.lengths = docs, tokens, tf, lengths


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


_BM25_CLASS = None


def _bm25_class():
    """`bm25s.BM25` with a vectorized `build_index_from_ids` (the extension point bm25s documents)."""
    global _BM25_CLASS
    if _BM25_CLASS is not None:
        return _BM25_CLASS
    import bm25s
    from bm25s.scoring import _select_idf_scorer, _select_tfc_scorer

    class VectorBM25(bm25s.BM25):
        def build_index_from_ids(self, unique_token_ids, corpus_token_ids, show_progress=True,
                                 leave_progress=False):
            flat = corpus_token_ids
            if not isinstance(flat, _FlatCorpus) or self.method in self.methods_requiring_nonoccurrence:
                return super().build_index_from_ids(unique_token_ids, corpus_token_ids, show_progress,
                                                    leave_progress)
            n_docs, n_vocab = len(flat.lengths), len(unique_token_ids)
            # the same arithmetic as bm25s (per entry instead of per document), hence the same floats:
            # idf from the document frequency, tf saturation from tf, document and average length
            avg_doc_len = flat.lengths.mean()
            df = np.bincount(flat.tokens, minlength=n_vocab)
            idf_fn = _select_idf_scorer(self.idf_method)
            idf_array = np.zeros(n_vocab, dtype=self.dtype)
            seen = df > 0
            distinct, where = np.unique(df[seen], return_inverse=True)
            idf_array[seen] = np.array([idf_fn(int(d), N=n_docs) for d in distinct], dtype=np.float64)[where]
            tfc_fn = _select_tfc_scorer(self.method)
            # CSC layout (token -> postings sorted by document), as bm25s stores it. Entries arrive
            # sorted by document; each step is sorted by token (stably) and scattered behind the
            # postings earlier steps placed, so temporaries stay at one step's size.
            indptr = np.zeros(n_vocab + 1, dtype=np.int64)
            np.cumsum(df, out=indptr[1:])
            data = np.empty(flat.tokens.size, dtype=self.dtype)
            indices = np.empty(flat.tokens.size, dtype=self.int_dtype)
            filled = indptr[:-1].copy()
            for i in range(0, flat.tokens.size, INDEX_STEP):
                s = slice(i, i + INDEX_STEP)
                tokens, docs = flat.tokens[s], flat.docs[s]
                tfc = tfc_fn(tf_array=flat.tf[s].astype(self.dtype), l_d=flat.lengths[docs],
                             l_avg=avg_doc_len, k1=self.k1, b=self.b, delta=self.delta)
                scores = (idf_array[tokens] * tfc).astype(self.dtype)
                order = np.argsort(tokens, kind="stable")
                tokens = tokens[order]
                rank = np.arange(tokens.size) - np.searchsorted(tokens, tokens)   # position among equals
                at = filled[tokens] + rank
                data[at] = scores[order]
                indices[at] = docs[order]
                filled += np.bincount(tokens, minlength=n_vocab)
            return {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}

    _BM25_CLASS = VectorBM25
    return VectorBM25


class BM25Index:
    """A BM25 index over `texts`; results are (position in `texts`, score), best first, score > 0.

    `texts` may be any iterable (e.g. a generator): it is read once, block by block.
    """

    def __init__(self, texts: Iterable[str], k1: float = 1.5, b: float = 0.75, show_progress: bool = False):
        self._vocab: dict[str, int] = {}        # stem -> token id
        flat = self._tokenize_corpus(texts)
        self.size = len(flat.lengths)
        self._bm25 = _bm25_class()(k1=k1, b=b)
        if self.size:
            # bm25s' "object" corpus form (`ids` + `vocab`) hands `flat` to build_index_from_ids as it is
            self._bm25.index(SimpleNamespace(ids=flat, vocab=self._vocab), create_empty_token=False,
                             show_progress=show_progress)
            scores = self._bm25.scores
        else:
            scores = {}
        del flat
        self._data = np.asarray(scores.get("data", []), dtype=np.float32)
        self._indices = np.asarray(scores.get("indices", []), dtype=np.int32)
        self._indptr = np.asarray(scores.get("indptr", [0]), dtype=np.int64)
        self._ptr = self._indptr.tolist()       # Python ints: ~5x faster to index one at a time
        self._local = threading.local()

    def _tokenize_corpus(self, texts: Iterable[str]) -> _FlatCorpus:
        """Token ids of all texts, as (doc, token, tf) triples per distinct token of each document."""
        word_ids, find = _WordIds(self._vocab, grow=True), TOKEN_RE.findall
        docs, tokens, tfs, lengths = [], [], [], []
        n = 0
        it = iter(texts)
        while True:
            block = list(islice(it, INDEX_BLOCK))
            if not block:
                break
            words = [find(text.lower()) for text in block]
            del block
            counts = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
            ids = np.fromiter(map(word_ids.__getitem__, chain.from_iterable(words)), dtype=np.int64,
                              count=int(counts.sum()))
            del words
            doc = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
            keep = ids >= 0
            ids, doc = ids[keep], doc[keep]
            pairs, tf = np.unique((doc << 32) | ids, return_counts=True)   # sorted by (doc, token)
            docs.append(((pairs >> 32) + n).astype(np.int32))
            tokens.append((pairs & 0xFFFFFFFF).astype(np.int32))
            tfs.append(tf.astype(np.int32))
            lengths.append(np.bincount(doc, minlength=len(counts)))
            n += len(counts)
        word_ids.grow = False
        self._word_ids = word_ids

        def cat(parts, dtype):
            return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)

        return _FlatCorpus(cat(docs, np.int32), cat(tokens, np.int32), cat(tfs, np.int32), cat(lengths, np.int64))

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


class SearchProcess:
    """A `BM25Index` in a helper process: indexing and search run beside the caller's own work.

    The dataset build is Python-bound (tokenizing, ranking, writing answers), so a second process is
    the only way it gets a second core. Only texts go to the helper and only hit positions and scores
    come back, computed by the same code as in-process, so results are identical.

    Use: `index(texts)` (queued; the helper builds while the caller goes on), then `submit(queries, k)`
    any number of times and `result()` once per submit, in order. Messages are pickled over the
    helper's stdin/stdout; a sender thread writes requests, so neither side can block the other on a
    full pipe. A helper that dies raises `RuntimeError` at the next `result()`.
    """

    def __init__(self):
        import queue
        import subprocess
        import sys
        from pathlib import Path

        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[1])          # import this checkout, not another one
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        self._proc = subprocess.Popen(
            [sys.executable, "-c", "from dataset_builder.retrieval import _serve; _serve()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        self._outbox: queue.Queue = queue.Queue()
        self.peak_rss: float | None = None           # MB, read when closing
        self._send_error: BaseException | None = None
        self._sender = threading.Thread(target=self._send_loop, name="bm25-helper-send", daemon=True)
        self._sender.start()

    def _send_loop(self) -> None:
        import pickle

        def send(message) -> None:
            pickle.dump(message, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()

        try:
            while True:
                message = self._outbox.get()
                if message is None:
                    break
                if message[0] == "index":          # texts are drawn here, block by block, as the helper reads
                    _, texts, k1, b = message
                    send(("begin", k1, b))
                    it = iter(texts)
                    while block := list(islice(it, INDEX_BLOCK)):
                        send(("texts", block))
                    send(("build",))
                else:
                    send(message)
        except BaseException as exc:  # noqa: BLE001 - reported by result()
            self._send_error = exc
        finally:
            try:
                self._proc.stdin.close()
            except OSError:
                pass

    def index(self, texts: Iterable[str], k1: float = 1.5, b: float = 0.75) -> None:
        """Replace the helper's index by one over `texts`; returns at once.

        `texts` is read later, block by block, by the sender thread (so it must stay valid, and no
        copy of all texts ever waits in memory); the helper builds while the caller goes on.
        """
        self._outbox.put(("index", texts, k1, b))

    def submit(self, queries: Sequence[str], k: int) -> None:
        self._outbox.put(("search", list(queries), k))

    def result(self) -> list[list[tuple[int, float]]]:
        """The hits of the oldest submitted search, as `BM25Index.search_many` gives them."""
        import pickle

        try:
            message = pickle.load(self._proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError):
            code = self._proc.wait()
            raise RuntimeError(f"the BM25 helper process stopped (exit code {code})"
                               + (f"; sending failed: {self._send_error!r}" if self._send_error else "")) from None
        if message[0] == "error":
            raise RuntimeError(f"the BM25 helper process failed:\n{message[1]}")
        _, counts, docs, scores = message
        bounds = np.concatenate(([0], np.cumsum(counts))).tolist()
        docs, scores = docs.tolist(), scores.tolist()
        return [list(zip(docs[a:e], scores[a:e])) for a, e in zip(bounds, bounds[1:])]

    def peak_rss_mb(self) -> float | None:
        """The helper's own peak resident memory (Linux; `ru_maxrss` of a child would also count the
        parent's pages it shared between fork and exec)."""
        try:
            with open(f"/proc/{self._proc.pid}/status") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return round(int(line.split()[1]) / 1024, 1)
        except OSError:
            pass
        return None

    def close(self, abort: bool = False) -> None:
        """Stop the helper: after its queued work, or at once with `abort` (results nobody will read)."""
        if self.peak_rss is None and self._proc.poll() is None:
            self.peak_rss = self.peak_rss_mb()
        self._outbox.put(None)
        if abort:
            self._proc.kill()
        self._sender.join(timeout=30)
        try:
            self._proc.wait(timeout=30)
        except Exception:  # noqa: BLE001 - a helper that does not stop is killed
            self._proc.kill()
            self._proc.wait()
        finally:
            self._proc.stdout.close()

    def __enter__(self) -> "SearchProcess":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(abort=exc_type is not None)


def _serve() -> None:
    """The helper's loop (see `SearchProcess`); stdout carries only the protocol."""
    import pickle
    import signal
    import sys
    import traceback

    signal.signal(signal.SIGINT, signal.SIG_IGN)          # Ctrl+C is the caller's: it stops the helper
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())     # a stray print must not corrupt the protocol
    inp = sys.stdin.buffer
    index = None

    def send(message) -> None:
        pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    def texts():
        while True:
            message = pickle.load(inp)
            if message[0] == "build":
                return
            yield from message[1]

    while True:
        try:
            message = pickle.load(inp)
        except EOFError:
            return
        try:
            if message[0] == "begin":
                index = None                                   # free the old index first
                index = BM25Index(texts(), k1=message[1], b=message[2])
            elif message[0] == "search":
                hits = index.search_many(message[1], message[2])
                counts = np.fromiter(map(len, hits), dtype=np.int32, count=len(hits))
                flat = [h for per_query in hits for h in per_query]
                send(("hits", counts, np.array([d for d, _ in flat], dtype=np.int64),
                      np.array([s for _, s in flat], dtype=np.float64)))
        except Exception:  # noqa: BLE001 - reported to the caller, which raises
            send(("error", traceback.format_exc()))
            return
