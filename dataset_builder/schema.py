"""The dataset's columns (the contract between builder, training, evaluation and demo) and Parquet I/O.

The Arrow schema carries the `datasets.Features` in its metadata, so `load_dataset` on the Parquet files
(local or on the Hub) returns exactly these types; the files are written atomically, split by split.
"""

from __future__ import annotations

from pathlib import Path

SPLITS = ("train", "validation", "test")
COLUMNS = ("id", "question", "contexts", "answer", "gold_chunk_id", "answerable", "gold_span", "origin",
           "source_doc", "messages")


VARIANT_SEP = "#cf-"   # row id of a counterfactual variant: <question id>#cf-<variant> (examples.COUNTERFACTUALS)


def variant_id(question_id: str, variant: str = "") -> str:
    return f"{question_id}{VARIANT_SEP}{variant}" if variant else question_id


def question_key(row_id: str) -> str:
    """The question a row belongs to: its counterfactual variants share it (training keeps them together)."""
    return row_id.split(VARIANT_SEP, 1)[0]


def features():
    from datasets import Features, List, Value

    chunk = {"id": Value("string"), "title": Value("string"), "source": Value("string"),
             "text": Value("string"), "metadata": Value("string")}
    return Features({
        "id": Value("string"),
        "question": Value("string"),
        "contexts": List(chunk),
        "answer": Value("string"),
        "gold_chunk_id": Value("string"),
        "answerable": Value("bool"),
        "gold_span": Value("string"),
        "origin": Value("string"),
        "source_doc": Value("string"),
        "messages": List({"role": Value("string"), "content": Value("string")}),
    })


def arrow_schema():
    return features().arrow_schema


def load_built(out_dir: str | Path):
    """The built folder as a `DatasetDict` (train/validation/test), typed by the schema."""
    from datasets import load_dataset

    out_dir = Path(out_dir)
    files = {s: str(out_dir / f"{s}.parquet") for s in SPLITS if (out_dir / f"{s}.parquet").exists()}
    return load_dataset("parquet", data_files=files, features=features())
