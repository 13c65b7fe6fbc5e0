"""`rag-de build`: read inputs, chunk, split by document, pick contexts, write answers, write Parquet.

Memory stays flat in the number of examples: each split is processed in batches (BM25 search, answer
writing, one Parquet row group per batch, built column-wise and compressed in a background thread)
streamed to a temporary file; all splits replace the final files only once every split is complete.
What stays in memory is the input (documents, chunks, questions) and one split's BM25 index at a time.

Speed (2 cores): the build is Python-bound, so with `bm25_threads` 0 (one per core) or above 1 and
enough questions, the largest split's BM25 index and search run in a helper process (see
`retrieval.SearchProcess`) while this one writes answers. Any mode gives byte-identical files.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dataset_builder.answer_check import check_answer
from dataset_builder.build_config import BuildConfig
from dataset_builder.contract import REFUSAL, chat_messages, recite_answer
from dataset_builder.examples import Corpus, Planned, choose_removals, locate_all, plan_example
from dataset_builder.records import Document, InputError, Question, SkipLog, sha256_file
from dataset_builder.schema import SPLITS
from dataset_builder.splits import assign_splits
from dataset_builder.writers import extractive_answer, make_writer
from dataset_builder.writers.base import WriteRequest

SAMPLE_DATA = Path(__file__).resolve().parent / "sample_data"
SAMPLE_ORIGIN = "sample-modules"
SAMPLE_LICENSE = "cc0-1.0"
NOTES = ("answer_start_repaired", "generated_id")   # SkipLog reasons for records that were kept
STATS_TOKEN_SAMPLE = 10_000   # chunks whose tokens are counted for the chunk statistics in stats.json
HELPER_MIN_QUESTIONS = 20_000  # smaller builds search in-process (the helper's start-up costs ~0.5 s)
HELPER_WINDOW = 2              # searches queued ahead in the helper


@dataclass
class BuildInputs:
    squad: list[str] = field(default_factory=list)               # files or Hub ids
    corpora: list[tuple[str, str]] = field(default_factory=list)  # (corpus path, QA file)

    @classmethod
    def sample(cls) -> "BuildInputs":
        return cls(corpora=[(str(SAMPLE_DATA / "catalog"), str(SAMPLE_DATA / "qa.jsonl"))])


def read_inputs(inputs: BuildInputs, cfg: BuildConfig, skips: SkipLog):
    """All documents and questions, plus a description of each input (origin, license, sha256)."""
    from dataset_builder.corpus_reader import read_corpus, read_qa
    from dataset_builder.squad_reader import read_squad_file, read_squad_hub, slug

    docs: list[Document] = []
    questions: list[Question] = []
    sources: list[dict] = []
    seen_ids: set[str] = set()
    doc_ids: set[str] = set()
    for spec in inputs.squad:
        if Path(spec).exists() or spec.endswith(".json"):
            d, q, info = read_squad_file(spec, skips, seen_ids, doc_ids)
            info["sha256"] = sha256_file(Path(spec))
        else:
            d, q, info = read_squad_hub(spec, cfg.hub_split, skips, seen_ids, doc_ids)
        docs += d
        questions += q
        sources.append({**info, "documents": len(d), "questions": len(q)})
    for corpus_path, qa_path in inputs.corpora:
        corpus_path = Path(corpus_path)
        is_sample = corpus_path.resolve().is_relative_to(SAMPLE_DATA)
        origin = SAMPLE_ORIGIN if is_sample else slug(corpus_path.stem).lower()
        d = read_corpus(corpus_path, origin, skips, doc_ids)
        q = read_qa(qa_path, d, origin, skips, seen_ids)
        files = sorted(corpus_path.rglob("*")) if corpus_path.is_dir() else [corpus_path]
        digest = {str(p.relative_to(corpus_path) if corpus_path.is_dir() else p.name): sha256_file(p)
                  for p in files if p.is_file()}
        docs += d
        questions += q
        sources.append({"input": str(corpus_path), "qa": str(qa_path), "kind": "corpus", "origin": origin,
                        "license": SAMPLE_LICENSE if is_sample else cfg.license, "documents": len(d),
                        "questions": len(q), "sha256": {"qa": sha256_file(Path(qa_path)), "corpus": digest}})
    if not questions:
        raise InputError("no usable questions in the inputs; see the skip reasons: "
                         + json.dumps(skips.as_dict()["counts"], ensure_ascii=False))
    return docs, questions, sources


def _assign(questions: list[Question], docs: list[Document], corpus: Corpus, cfg: BuildConfig) -> dict[str, str]:
    """Split per unit (document group); questions about no document go where there are chunks to show."""
    import random

    unit_sizes = Counter(q.group for q in questions if q.doc_id is not None)
    for doc in docs:                 # documents without questions still belong to a split (negatives)
        unit_sizes.setdefault(doc.group, 0)
    fractions = {"train": cfg.train_fraction, "validation": cfg.validation_fraction, "test": cfg.test_fraction}
    unit_split = assign_splits(dict(unit_sizes), fractions, cfg.seed)
    with_chunks = sorted({unit_split[corpus.docs[d].group] for d in corpus.chunk_doc}, key=SPLITS.index)
    weights = [fractions[s] for s in with_chunks]
    for q in questions:
        if q.doc_id is None and with_chunks:
            unit_split[q.group] = random.Random(f"{cfg.seed}:{q.id}:split").choices(with_chunks, weights)[0]
    return unit_split


def _finish_answer(answer: str, number: int, title: str, cite_title: bool) -> str:
    """Generated answers take the extractive answers' form: source lead first, one citation."""
    return recite_answer(answer, number, title if cite_title else None)


class SplitWriter:
    """Streams one split into Parquet, one row group per batch, into a temp file beside `path`.

    `close(ok=True)` completes and fsyncs the temp file; `publish()` then renames it over `path`
    (atomic), and `discard()` removes it. The build publishes its splits only once all are complete,
    so a killed or failed build leaves the previous dataset (or none) in place, never a mix.

    Encoding and zstd compression run in a background thread (pyarrow releases the GIL there), so one
    core compresses batch i while the build makes batch i+1; at most one batch waits, so memory stays
    at two batches. The bytes are the same as writing in the calling thread.
    """

    def __init__(self, path: Path):
        import tempfile
        from concurrent.futures import ThreadPoolExecutor

        import pyarrow.parquet as pq

        from dataset_builder.schema import arrow_schema

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent)
        self.tmp = Path(tmp)
        self._fh = os.fdopen(fd, "wb")
        self.schema = arrow_schema()
        self._writer = pq.ParquetWriter(self._fh, self.schema, compression="zstd")
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet")
        self._pending = None
        self.rows = 0

    def write(self, table) -> None:
        """Queue one batch (a `pyarrow.Table` with `self.schema`); raises a failed earlier write."""
        self._wait()
        if table.num_rows:
            self._pending = self._pool.submit(self._writer.write_table, table)
            self.rows += table.num_rows

    def _wait(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self, ok: bool = True) -> None:
        """Finish the file (`ok`), or stop and remove it."""
        try:
            try:
                self._wait()
            except BaseException:
                if ok:
                    raise
            finally:
                self._pool.shutdown(wait=True)
                self._writer.close()
            if ok:
                self._fh.flush()
                os.fsync(self._fh.fileno())
        except BaseException:
            self._fh.close()
            self.discard()
            raise
        self._fh.close()
        if not ok:
            self.discard()

    def publish(self) -> None:
        """Rename the finished file over `path`; an empty split has no file (datasets cannot load one)."""
        if self.rows:
            os.replace(self.tmp, self.path)
        else:
            self.discard()
            self.path.unlink(missing_ok=True)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


class BatchColumns:
    """One batch of examples, column by column, turned into an Arrow table without per-row dicts.

    `pa.Table.from_pylist` on row dicts with nested lists of structs (contexts, messages) was a tenth
    of the build time; flat Python lists per column plus offsets build the same table several times
    faster, and the Parquet bytes are identical.
    """

    SCALARS = ("id", "question", "answer", "gold_chunk_id", "answerable", "gold_span", "origin", "source_doc")

    def __init__(self):
        self.scalars: dict[str, list] = {name: [] for name in self.SCALARS}
        self.context_offsets = [0]
        self.context_chunks: list[int] = []      # chunk indices, all examples' contexts in a row
        self.message_offsets = [0]
        self.roles: list[str] = []
        self.contents: list[str] = []

    def __len__(self) -> int:
        return len(self.scalars["id"])

    def add(self, q: Question, contexts: list[int], answer: str, gold_chunk_id: str | None,
            messages: list[dict]) -> None:
        values = (q.id, q.question, answer, gold_chunk_id, gold_chunk_id is not None,
                  q.gold_span if gold_chunk_id is not None else "", q.origin, q.group)
        for column, value in zip(self.scalars.values(), values):
            column.append(value)
        self.context_chunks.extend(contexts)
        self.context_offsets.append(len(self.context_chunks))
        for message in messages:
            self.roles.append(message["role"])
            self.contents.append(message["content"])
        self.message_offsets.append(len(self.roles))

    def table(self, corpus: Corpus, schema):
        import pyarrow as pa

        chunks = [corpus.chunks[c] for c in self.context_chunks]
        context_fields = {"id": [c.id for c in chunks], "title": [c.title for c in chunks],
                          "source": [c.source for c in chunks], "text": [c.text for c in chunks],
                          "metadata": [corpus.metadata_json(c) for c in self.context_chunks]}
        message_fields = {"role": self.roles, "content": self.contents}
        columns = []
        for f in schema:
            if f.name == "contexts":
                columns.append(_list_of_structs(f.type, self.context_offsets, context_fields))
            elif f.name == "messages":
                columns.append(_list_of_structs(f.type, self.message_offsets, message_fields))
            else:
                columns.append(_array(self.scalars[f.name], f.type))
        return pa.Table.from_arrays(columns, schema=schema)


def _array(values: list, type_):
    """An Arrow array; text goes in as UTF-8 bytes encoded here.

    Handing `str` objects to Arrow makes CPython attach a cached UTF-8 copy to every non-ASCII string
    for as long as it lives: the chunk texts and questions, which live for the whole build, would
    double in memory as the build goes on (and that first conversion is ~4x slower than `encode`).
    """
    import pyarrow as pa

    if pa.types.is_string(type_):
        values = [None if v is None else v.encode() for v in values]
    return pa.array(values, type=type_)


def _list_of_structs(list_type, offsets: list[int], fields: dict[str, list]):
    import pyarrow as pa

    struct_type = list_type.value_type
    values = pa.StructArray.from_arrays([_array(fields[f.name], f.type) for f in struct_type],
                                        fields=list(struct_type))
    return pa.ListArray.from_arrays(pa.array(offsets, type=pa.int32()), values, type=list_type)


def build(inputs: BuildInputs, out_dir: str | Path, cfg: BuildConfig | None = None, progress: bool = True) -> dict:
    """Build the dataset into `out_dir`; returns the stats (also written to out_dir/stats.json).

    The inputs are millions of long-lived objects (documents, questions, chunks), and every full
    collection of the cyclic garbage collector re-walked all of them (~10% of a 100k build). So the
    collector is paused while they are read (reading makes no reference cycles), then they are frozen
    (`gc.freeze`: out of the collector's reach, still freed by reference counting) and the collector
    runs again for the batches, where a writer (a model, an HTTP client) may well make cycles.
    """
    state = _GcState()
    try:
        return _build(inputs, out_dir, cfg, progress, state)
    finally:
        state.restore()


class _GcState:
    """Pauses the cyclic GC, then freezes what exists; `restore` puts everything back as it was."""

    def __init__(self):
        self.enabled = gc.isenabled()
        self.frozen = False
        gc.disable()

    def freeze_inputs(self) -> None:
        if gc.get_freeze_count() == 0:          # a caller's own freeze is left alone
            gc.freeze()
            self.frozen = True
        if self.enabled:
            gc.enable()

    def restore(self) -> None:
        if self.frozen:
            gc.unfreeze()
            self.frozen = False
        if self.enabled:
            gc.enable()
        else:
            gc.disable()


def _build(inputs: BuildInputs, out_dir: str | Path, cfg: BuildConfig | None, progress: bool,
           gc_state: _GcState) -> dict:
    from rag_de.atomic import write_json
    from rag_de.base_model import cache_root
    from rag_de.config import to_dict

    from dataset_builder.chunking import TokenCounter

    cfg = (cfg or BuildConfig()).validate()
    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    skips = SkipLog(strict=cfg.strict)
    timings: Counter = Counter()     # seconds per phase, in stats.json (where the build spends its time)
    clock = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[phase] += now - clock
        clock = now

    docs, questions, sources = read_inputs(inputs, cfg, skips)
    lap("read")
    helper = _start_helper(cfg, len(questions))     # starts up while we chunk
    try:
        counter = TokenCounter.from_name(cfg.tokenizer)
        corpus = Corpus.build(docs, cfg.max_chunk_tokens, counter, progress=progress)
        gold = locate_all(questions, corpus, skips)
        lap("chunk")
        questions = [q for q in questions if q.id in gold]
        unit_split = _assign(questions, docs, corpus, cfg)
        per_split = []
        for split in SPLITS:
            split_chunks = [c for c in range(len(corpus.chunks))
                            if unit_split[corpus.docs[corpus.chunk_doc[c]].group] == split]
            per_split.append(([q for q in questions if unit_split[q.group] == split], split_chunks))
    except BaseException:
        if helper is not None:
            helper.close(abort=True)
        raise
    hits = _BatchHits(corpus, per_split, cfg, helper, lap)   # closes the helper
    try:
        cache_dir = Path(cfg.cache_dir) if cfg.cache_dir else cache_root() / "writer-cache"
        writer = make_writer(cfg, cache_dir)
    except BaseException:
        hits.close(abort=True)
        raise
    from dataset_builder.schema import arrow_schema

    arrow_schema()                   # imports `datasets`: its many objects are long-lived too
    gc_state.freeze_inputs()
    fallbacks: Counter = Counter()
    split_stats: dict[str, dict] = dict.fromkeys(SPLITS)    # filled in processing order, listed in this one
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(questions), desc="building", unit="ex", dynamic_ncols=True)
    sinks: list[SplitWriter] = []
    try:
        for s in hits.order:
            split = SPLITS[s]
            split_questions, split_chunks = per_split[s]
            stats = {"examples": 0, "answerable": 0, "unanswerable": 0, "unanswerable_natural": 0,
                     "unanswerable_removed_gold": 0, "random_negatives": 0, "chunks": len(split_chunks),
                     "source_docs": len({q.group for q in split_questions}),
                     "contexts_per_example": Counter()}
            split_stats[split] = stats
            sink = SplitWriter(out_dir / f"{split}.parquet")
            sinks.append(sink)
            ok = False
            try:
                lap("other")
                removals = choose_removals(split_questions, cfg.unanswerable_share, cfg.seed, split)
                for b in range(0, len(split_questions), cfg.batch_size):
                    batch = split_questions[b:b + cfg.batch_size]
                    batch_hits = hits.next(s, lap)
                    lap("retrieve")
                    plans = [plan_example(q, gold[q.id], q.id in removals, [split_chunks[i] for i, _ in h],
                                          split_chunks, corpus, cfg.seed, cfg.min_k, cfg.k)
                             for q, h in zip(batch, batch_hits)]
                    del batch_hits
                    lap("plan")
                    columns = _answer_batch(plans, corpus, cfg, writer, fallbacks, skips, stats)
                    del plans
                    lap("answer")
                    sink.write(columns.table(corpus, sink.schema))
                    del columns
                    lap("parquet")
                    if bar is not None:
                        bar.update(len(batch))
                ok = True
            finally:
                sink.close(ok)
            stats["contexts_per_example"] = dict(sorted(stats["contexts_per_example"].items()))
        hits.close()
        for sink in sinks:           # all splits are complete: only now replace the previous dataset
            sink.publish()
        sinks.clear()
    finally:
        for sink in sinks:
            sink.discard()
        hits.close(abort=True)
        if bar is not None:
            bar.close()
        writer.close()

    elapsed = time.perf_counter() - started
    step = max(1, len(corpus.chunks) // STATS_TOKEN_SAMPLE)    # token stats from an even sample
    token_counts = [counter(c.text) for c in corpus.chunks[::step]]
    total = sum(s["examples"] for s in split_stats.values())
    result = {
        "seed": cfg.seed,
        "splits": split_stats,
        "totals": {"examples": total,
                   "answerable": sum(s["answerable"] for s in split_stats.values()),
                   "unanswerable": sum(s["unanswerable"] for s in split_stats.values()),
                   "questions_used": len(questions),
                   "records_skipped": sum(v for k, v in skips.counts.items() if k not in NOTES)},
        "chunks": {"documents": len(corpus.docs), "chunks": len(corpus.chunks),
                   "max_chunk_tokens": cfg.max_chunk_tokens,
                   "token_counter": cfg.tokenizer or "estimate (2.45 tokens/word + 1/punctuation mark)",
                   "tokens_mean": round(sum(token_counts) / max(1, len(token_counts)), 1),
                   "tokens_max": max(token_counts, default=0)},
        "writer": {"name": writer.name, "fallbacks": dict(sorted(fallbacks.items())),
                   "fallbacks_total": sum(fallbacks.values()), **writer.stats()},
        "skipped": skips.as_dict(),
        "sources": sources,
        "licenses": sorted({s["license"] or "unknown" for s in sources}),
        "origins": sorted({s["origin"] for s in sources}),
        "config": to_dict(cfg),
        "elapsed_s": round(elapsed, 3),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "search_helper": {"used": helper_split_name(hits), "peak_rss_mb": hits.helper_peak_rss_mb},
        "examples_per_s": round(total / elapsed, 1) if elapsed > 0 else None,
        "files": {f"{s}.parquet": sha256_file(out_dir / f"{s}.parquet") for s in SPLITS
                  if (out_dir / f"{s}.parquet").exists()},
    }
    write_json(out_dir / "stats.json", result)
    return result


def search_workers(cfg: BuildConfig) -> int:
    """Processes for BM25 (`bm25_threads`; 0 = one per core): above one, a helper process indexes and
    searches while the build writes answers."""
    from dataset_builder.retrieval import default_threads

    return cfg.bm25_threads if cfg.bm25_threads > 0 else default_threads()


def helper_split_name(hits: "_BatchHits") -> str | None:
    """The split searched by the BM25 helper process (None: all in-process)."""
    return SPLITS[hits.helper_split] if hits.helper_split is not None else None


def _start_helper(cfg: BuildConfig, n_questions: int):
    """A `SearchProcess` when it pays: several workers allowed and enough questions to amortize its start."""
    import sys

    if search_workers(cfg) < 2 or n_questions < HELPER_MIN_QUESTIONS or not sys.executable:
        return None
    from dataset_builder.retrieval import SearchProcess

    return SearchProcess()


class _BatchHits:
    """BM25 hits for each batch of each split, in order: from an in-process index, or from the helper.

    Splits are processed smallest first (in every mode, so outputs never depend on the mode). With a
    helper process, the largest split (train) is indexed and searched there from the start, while this
    process indexes and searches the small splits itself and writes their answers; by the time it
    reaches train, the helper's index is ready and stays `HELPER_WINDOW` searches ahead. The hits are
    the same either way (same code, same index contents).
    """

    def __init__(self, corpus: Corpus, per_split: list, cfg: BuildConfig, helper, lap):
        self.corpus, self.per_split, self.cfg, self.helper = corpus, per_split, cfg, helper
        self.k = cfg.negatives_pool + cfg.k
        self.order = sorted(range(len(per_split)), key=lambda s: (len(per_split[s][0]), s))
        self.indexes: dict[int, object] = {}
        self.next_batch: dict[int, int] = {}
        largest = self.order[-1]
        self.helper_split = largest if helper is not None and per_split[largest][0] else None
        self.helper_peak_rss_mb = None
        if self.helper_split is not None:
            self.to_submit = list(range(0, len(per_split[largest][0]), cfg.batch_size))
            helper.index(self.texts(largest))
            self._submit(HELPER_WINDOW)
        elif per_split[largest][0]:
            # in-process, the largest index is built first all the same: on a heap not yet fragmented
            # by answer batches (~30 MB less peak memory at 100k questions than building it last)
            self._index(largest, lap)

    def texts(self, s: int):
        chunks = self.corpus.chunks
        return (f"{chunks[c].title}\n{chunks[c].text}" for c in self.per_split[s][1])

    def queries(self, s: int, b: int) -> list[str]:
        return [q.question for q in self.per_split[s][0][b:b + self.cfg.batch_size]]

    def _submit(self, n: int) -> None:
        for b in self.to_submit[:n]:
            self.helper.submit(self.queries(self.helper_split, b), self.k)
        del self.to_submit[:n]

    def next(self, s: int, lap) -> list:
        """Hits of split `s`'s next batch (batches are asked for in order)."""
        b = self.next_batch.get(s, 0)
        self.next_batch[s] = b + self.cfg.batch_size
        if s == self.helper_split:
            hits = self.helper.result()
            self._submit(1)
            return hits
        index = self.indexes.get(s) or self._index(s, lap)
        hits = index.search_many(self.queries(s, b), self.k, n_threads=self.cfg.bm25_threads or None)
        if self.next_batch[s] >= len(self.per_split[s][0]):
            del self.indexes[s]                    # the split is done
        return hits

    def _index(self, s: int, lap):
        from dataset_builder.retrieval import BM25Index

        lap("other")
        index = self.indexes[s] = BM25Index(self.texts(s))
        lap("index")
        return index

    def close(self, abort: bool = False) -> None:
        self.indexes.clear()
        if self.helper is not None:
            helper, self.helper = self.helper, None
            helper.close(abort=abort)
            self.helper_peak_rss_mb = helper.peak_rss


def _answer_batch(plans: list[Planned], corpus: Corpus, cfg: BuildConfig, writer, fallbacks: Counter,
                  skips: SkipLog, stats: dict) -> BatchColumns:
    """Answers for a batch of planned examples (writer, check, fallback) -> the batch's columns."""
    requests, request_rows = [], []
    for i, p in enumerate(plans):
        if p.gold is not None:
            chunks = [corpus.chunks[c] for c in p.contexts]
            requests.append(WriteRequest(p.question.question, chunks, p.contexts.index(p.gold) + 1,
                                         p.question.gold_span, p.span_start))
            request_rows.append(i)
    answers: list[str | None] = []
    for req in requests:     # the extractive answer is checked too: it is the fallback for all others
        text = extractive_answer(req, cfg.cite_title)
        # by construction the sentence holds the span and format_answer cites [n]: verify that cheaply,
        # and run the full check only when the cheap one fails (e.g. the span was re-cased)
        cheap_ok = req.gold_span in text and f"[{req.gold_number}]" in text and text.count("[") == 1
        problem = None if cheap_ok else check_answer(text, req.gold_span, req.gold_number, len(req.contexts),
                                                     cfg.check.min_overlap, max_answer_words=10 ** 6)
        answers.append(text if problem is None else None)
    if writer.name != "extractive" and requests:
        generated = writer.write(requests)
        for j, (req, text) in enumerate(zip(requests, generated)):
            reason = "writer_error" if text is None else check_answer(
                text, req.gold_span, req.gold_number, len(req.contexts), cfg.check.min_overlap,
                cfg.check.max_answer_words)
            if reason is None:
                answers[j] = _finish_answer(text, req.gold_number, req.gold_chunk.title, cfg.cite_title)
            else:
                fallbacks[reason] += 1
    answer_of = dict(zip(request_rows, answers))
    columns = BatchColumns()
    counts = stats["contexts_per_example"]
    for i, p in enumerate(plans):
        q = p.question
        if p.gold is not None:
            answer = answer_of[i]
            if answer is None:
                skips.skip("extractive_check_failed", q.where,
                           "no answer passed the check (the extractive sentence lost the span or citation)")
                continue
        else:
            answer = REFUSAL
            if not p.contexts:
                skips.skip("no_negatives", q.where, "no chunk in the split can serve as context for a refusal",
                           "add more documents")
                continue
        chunks = [corpus.chunks[c] for c in p.contexts]
        columns.add(q, p.contexts, answer, corpus.chunks[p.gold].id if p.gold is not None else None,
                    chat_messages(q.question, chunks, answer))
        stats["examples"] += 1
        stats["answerable" if p.gold is not None else "unanswerable"] += 1
        if p.kind == "natural":
            stats["unanswerable_natural"] += 1
        elif p.kind == "removed_gold":
            stats["unanswerable_removed_gold"] += 1
        stats["random_negatives"] += p.random_fill
        counts[len(p.contexts)] += 1
    return columns


def run_build_cli(args) -> int:
    """Entry point of `rag-de build` (flags -> BuildInputs + BuildConfig)."""
    import sys

    from rag_de.config import ConfigError, load, overrides_from_args

    if len(args.corpus) != len(args.qa):
        print(f"error: give one --qa per --corpus (got {len(args.corpus)} --corpus, {len(args.qa)} --qa)",
              file=sys.stderr)
        return 2
    try:
        cfg = load(BuildConfig, args.config, overrides_from_args(args)).validate()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    inputs = BuildInputs(squad=list(args.squad), corpora=list(zip(args.corpus, args.qa)))
    if not inputs.squad and not inputs.corpora:
        inputs = BuildInputs.sample()
        print(f"[build] no inputs given: using the shipped sample data in {SAMPLE_DATA}", file=sys.stderr)
    try:
        stats = build(inputs, args.out, cfg, progress=not os.environ.get("RAG_DE_NO_PROGRESS"))
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _print_summary(stats, args.out)
    return 0


def _print_summary(stats: dict, out: str) -> None:
    sizes = ", ".join(f"{s} {v['examples']} ({v['unanswerable']} refusals)" for s, v in stats["splits"].items())
    print(f"[build] {stats['totals']['examples']} examples -> {out}: {sizes}")
    print(f"[build] {stats['chunks']['chunks']} chunks from {stats['chunks']['documents']} documents; "
          f"{stats['examples_per_s']} examples/s; writer {stats['writer']['name']} "
          f"({stats['writer']['fallbacks_total']} fallbacks)")
    skipped = stats["skipped"]["counts"]
    if skipped:
        print("[build] skipped/repaired records: " + ", ".join(f"{k} {v}" for k, v in skipped.items())
              + f" (details in {out}/stats.json)")
