"""The build's fast paths give what the plain ones would: column-wise Arrow batches, background Parquet
writes (published atomically, all splits at the end), no growth of long-lived strings, the garbage
collector left as it was, the BM25 helper process giving the in-process hits."""

from __future__ import annotations

import gc
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dataset_builder.contract import REFUSAL, chat_messages
from dataset_builder.examples import Corpus
from dataset_builder.pipeline import BatchColumns, BuildInputs, SplitWriter, _array, build
from dataset_builder.records import Document, Question
from dataset_builder.schema import arrow_schema


def small_corpus() -> Corpus:
    docs = [Document("m1", "## Prüfung\nKlausur, 90 Minuten.", "Modul Statistik", "m1.md",
                     {"module_code": "STA", "ects": 5}, "g/m1", "t", "m1.md"),
            Document("m2", "Datenbanken behandelt SQL. Übungen jede Woche.", "Datenbanken", "m2.md", {}, "g/m2", "t",
                     "m2.md")]
    return Corpus.build(docs, 256, lambda text: len(text.split()))


def test_batch_columns_equal_the_row_dicts_table():
    corpus = small_corpus()
    schema = arrow_schema()
    questions = [Question("q1", "Wie lange dauert die Klausur?", "m1", "90 Minuten", None, True, "t", "g/m1", "x:1"),
                 Question("q2", "Wann ist die Mensa offen?", None, "", None, False, "t", "g/none", "x:2")]
    examples = [(questions[0], [1, 0], "Laut Abschnitt [2]: Klausur, 90 Minuten.", corpus.chunks[0].id),
                (questions[1], [1], REFUSAL, None)]
    columns, rows = BatchColumns(), []
    for q, contexts, answer, gold_id in examples:
        messages = chat_messages(q.question, [corpus.chunks[c] for c in contexts], answer)
        columns.add(q, contexts, answer, gold_id, messages)
        rows.append({"id": q.id, "question": q.question, "contexts": [corpus.record(c) for c in contexts],
                     "answer": answer, "gold_chunk_id": gold_id, "answerable": gold_id is not None,
                     "gold_span": q.gold_span if gold_id else "", "origin": q.origin, "source_doc": q.group,
                     "messages": messages})
    table = columns.table(corpus, schema)
    assert table.equals(pa.Table.from_pylist(rows, schema=schema), check_metadata=True)


def test_arrow_conversion_leaves_long_lived_strings_alone():
    """`str` handed to Arrow would keep a UTF-8 copy attached to each non-ASCII corpus text."""
    text = "Die Prüfung dauert 90 Minuten. " * 20
    size = sys.getsizeof(text)
    assert _array([text, None], pa.string()).to_pylist() == [text, None]
    assert sys.getsizeof(text) == size


def test_split_writer_writes_in_the_background_and_publishes_atomically(tmp_path):
    schema = arrow_schema()
    corpus = small_corpus()
    columns = BatchColumns()
    q = Question("q1", "Frage?", "m1", "", None, False, "t", "g/m1", "x:1")
    columns.add(q, [0], REFUSAL, None, chat_messages(q.question, [corpus.chunks[0]], REFUSAL))
    table = columns.table(corpus, schema)
    sink = SplitWriter(tmp_path / "train.parquet")
    for _ in range(3):
        sink.write(table)
    sink.close(ok=True)
    assert not (tmp_path / "train.parquet").exists()   # complete, but published only with the other splits
    sink.publish()
    written = pq.ParquetFile(tmp_path / "train.parquet")
    assert written.metadata.num_row_groups == 3 and sink.rows == 3
    assert written.read().to_pylist() == table.to_pylist() * 3

    sink = SplitWriter(tmp_path / "bad.parquet")
    sink.write(table.drop_columns(["answer"]))       # fails in the writer thread ...
    with pytest.raises(ValueError):
        sink.write(table)                            # ... and surfaces on the next call
    sink.close(ok=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.parquet"]   # no partial file, no temp file


def test_build_restores_the_garbage_collector(tmp_path):
    assert gc.isenabled() and gc.get_freeze_count() == 0
    build(BuildInputs.sample(), tmp_path / "out", progress=False)
    assert gc.isenabled() and gc.get_freeze_count() == 0
    gc.disable()
    try:
        build(BuildInputs.sample(), tmp_path / "out2", progress=False)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_helper_process_gives_the_same_dataset(tmp_path, monkeypatch):
    """BM25 in the helper process (several workers) or in-process: byte-identical Parquet files."""
    import dataset_builder.pipeline as pipeline
    from dataset_builder.build_config import BuildConfig

    started = []
    start_helper = pipeline._start_helper
    monkeypatch.setattr(pipeline, "_start_helper", lambda *a: started.append(start_helper(*a)) or started[-1])
    monkeypatch.setattr(pipeline, "HELPER_MIN_QUESTIONS", 0)
    monkeypatch.setattr(pipeline, "HELPER_WINDOW", 1)
    one = build(BuildInputs.sample(), tmp_path / "one", BuildConfig(bm25_threads=1, batch_size=16), progress=False)
    two = build(BuildInputs.sample(), tmp_path / "two", BuildConfig(bm25_threads=2, batch_size=16), progress=False)
    assert started[0] is None and started[1] is not None and started[1]._proc.returncode == 0
    assert one["search_helper"]["used"] is None and two["search_helper"]["used"] == "train"
    assert sys.platform != "linux" or two["search_helper"]["peak_rss_mb"] > 10
    assert one["files"] == two["files"] and one["splits"] == two["splits"]


def test_search_process_matches_in_process_search_and_reports_a_dead_helper():
    from dataset_builder.retrieval import BM25Index, SearchProcess

    texts = ["Die Prüfung im Modul Statistik ist eine Klausur.", "Datenbanken: SQL und Transaktionen.",
             "Die Mensa öffnet um 11 Uhr.", "Statistik hat 5 ECTS."] * 20
    queries = ["Klausur Statistik", "SQL", "Mensa", "ECTS", "xyzzy"] * 10
    with SearchProcess() as helper:
        helper.index(iter(texts))
        helper.submit(queries, 5)
        helper.submit(queries[:2], 1)
        assert helper.result() == BM25Index(texts).search_many(queries, 5)
        assert helper.result() == BM25Index(texts).search_many(queries[:2], 1)
        helper.index(texts[:3])                      # a new index replaces the old one
        helper.submit(queries, 3)
        assert helper.result() == BM25Index(texts[:3]).search_many(queries, 3)
        helper._proc.kill()
        helper.submit(queries, 3)
        with pytest.raises(RuntimeError, match="BM25 helper process stopped"):
            helper.result()


def test_a_failed_build_leaves_the_previous_dataset_untouched(tmp_path, monkeypatch):
    """Splits are published together at the end: a failure in the last split changes no file."""
    import dataset_builder.pipeline as pipeline

    out = tmp_path / "out"
    build(BuildInputs.sample(), out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []
    answer_batch = pipeline._answer_batch

    def fail_late(plans, *args):
        calls.append(len(plans))
        if len(calls) == 3:                          # the last (largest) split
            raise RuntimeError("boom")
        return answer_batch(plans, *args)

    monkeypatch.setattr(pipeline, "_answer_batch", fail_late)
    with pytest.raises(RuntimeError, match="boom"):
        build(BuildInputs.sample(), out, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before   # no new file, no temp file left
