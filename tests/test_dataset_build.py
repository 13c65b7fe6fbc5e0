"""The build is reproducible and never leaves a half-written dataset: the same seed gives the same bytes,
splits are published together (one row group per batch), a failed build changes no file."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from dataset_builder.build_config import BuildConfig
from dataset_builder.parquet_files import SplitFiles
from dataset_builder.pipeline import BuildInputs, build
from dataset_builder.schema import COLUMNS, load_built


def files_of(folder) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_the_same_seed_gives_byte_identical_files(tmp_path):
    """Two builds (small batches: several row groups; one and two search threads): the same bytes."""
    one = build(BuildInputs.sample(), tmp_path / "one", BuildConfig(batch_size=16, bm25_threads=1), progress=False)
    two = build(BuildInputs.sample(), tmp_path / "two", BuildConfig(batch_size=16, bm25_threads=2), progress=False)
    parquet = {name: data for name, data in files_of(tmp_path / "one").items() if name.endswith(".parquet")}
    assert sorted(parquet) == ["test.parquet", "train.parquet", "validation.parquet"]
    assert parquet == {n: d for n, d in files_of(tmp_path / "two").items() if n.endswith(".parquet")}
    assert one["files"] == two["files"] and one["splits"] == two["splits"]
    assert pq.ParquetFile(tmp_path / "one" / "train.parquet").metadata.num_row_groups > 1
    other = build(BuildInputs.sample(), tmp_path / "seed7", BuildConfig(batch_size=16, seed=7), progress=False)
    assert other["files"]["train.parquet"] != one["files"]["train.parquet"]   # the check can fail


def row(i: int) -> dict:
    return {"id": f"q{i}", "question": "Wie lange dauert die Klausur?",
            "contexts": [{"id": "m1#0", "title": "Statistik", "source": "m1.md", "text": "Klausur, 90 Minuten.",
                          "metadata": "{}"}],
            "answer": "Laut Abschnitt [1]: Klausur, 90 Minuten.", "gold_chunk_id": "m1#0", "answerable": True,
            "gold_span": "90 Minuten", "origin": "t", "source_doc": "g/m1",
            "messages": [{"role": "user", "content": "Frage"}, {"role": "assistant", "content": "Antwort"}]}


def test_split_files_appear_together_one_row_group_per_write(tmp_path):
    (tmp_path / "test.parquet").write_bytes(b"an old split that the new build leaves empty")
    with SplitFiles(tmp_path) as files:
        files.write("train", [row(0), row(1)])
        files.write("validation", [row(2)])
        files.write("train", [row(3)])
        files.write("test", [])
        assert not (tmp_path / "train.parquet").exists()        # nothing is published before the end
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.parquet", "validation.parquet"]
    train = pq.ParquetFile(tmp_path / "train.parquet")
    assert train.metadata.num_row_groups == 2 and files.rows == {"train": 3, "validation": 1, "test": 0}
    assert train.read().to_pylist() == [row(0), row(1), row(3)]
    loaded = load_built(tmp_path)                                 # typed by the schema's features
    assert loaded["train"].column_names == list(COLUMNS) and loaded["validation"][0] == row(2)


def test_split_files_fail_as_a_whole(tmp_path):
    with SplitFiles(tmp_path) as files:
        files.write("train", [row(0)])
    before = files_of(tmp_path)
    with pytest.raises(RuntimeError, match="boom"):
        with SplitFiles(tmp_path) as files:
            files.write("validation", [row(1)])
            files.write("train", [row(2)])
            raise RuntimeError("boom")
    assert files_of(tmp_path) == before                          # no new file, no temp file left
    with pytest.raises(ValueError):
        with SplitFiles(tmp_path) as files:
            files.write("train", [{**row(3), "answerable": "maybe"}])   # a row that does not fit the schema
    assert files_of(tmp_path) == before


def test_a_failed_build_leaves_the_previous_dataset_untouched(tmp_path, monkeypatch):
    """A failure in the last split changes no file of the previous build."""
    import dataset_builder.pipeline as pipeline

    out = tmp_path / "out"
    build(BuildInputs.sample(), out, progress=False)
    before = files_of(out)
    calls = []
    write_answers = pipeline.write_answers

    def fail_late(plans, *args):
        calls.append(len(plans))
        if len(calls) == 3:                          # the last split (test)
            raise RuntimeError("boom")
        return write_answers(plans, *args)

    monkeypatch.setattr(pipeline, "write_answers", fail_late)
    with pytest.raises(RuntimeError, match="boom"):
        build(BuildInputs.sample(), out, progress=False)
    assert len(calls) == 3 and files_of(out) == before
