"""The evaluation split: loaded from the Hub or a local build folder, and checked before any model runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag_de.data_files import check_columns as require_columns
from rag_de.errors import UserError
from rag_de.data_files import require_split_files

REQUIRED_COLUMNS = ("id", "question", "contexts", "answer", "gold_chunk_id", "answerable", "gold_span")


class EvalInputError(UserError):
    """Bad evaluation input (dataset, adapter, base model); raised before any generation starts."""


def load_split(dataset: str, split: str, revision: str | None = None) -> list[dict[str, Any]]:
    """Rows of `split` as dicts; raises `EvalInputError` for a missing split, missing columns or no rows."""
    import datasets

    folder = Path(dataset)
    if folder.is_dir():
        files = require_split_files(folder, split, EvalInputError)
        where = ", ".join(str(f) for f in files)
        import pyarrow.parquet as pq

        metas = [pq.ParquetFile(f) for f in files]
        check_columns(metas[0].schema_arrow.names, where)
        if sum(m.metadata.num_rows for m in metas) == 0:
            raise empty_split(where, split)
        ds = datasets.load_dataset("parquet", data_files={split: [str(f) for f in files]}, split=split)
    else:
        where = f"{dataset} (split {split})"
        try:
            ds = datasets.load_dataset(dataset, split=split, revision=revision)
        except ValueError as exc:  # datasets raises ValueError for an unknown or empty split
            if "corresponds to no data" in str(exc):
                raise empty_split(where, split) from None
            raise EvalInputError(f"dataset {dataset}: cannot load split {split!r}: {exc}") from None
    check_columns(ds.column_names, where)
    if len(ds) == 0:
        raise empty_split(where, split)
    rows = ds.to_list()
    check_rows(rows, where)
    return rows


def check_columns(columns: list[str], where: str) -> None:
    require_columns(columns, REQUIRED_COLUMNS, where, "the evaluation", EvalInputError)


def empty_split(where: str, split: str) -> EvalInputError:
    return EvalInputError(f"{where}: split {split!r} has no rows; pick a split with examples (--split)")


def check_rows(rows: list[dict[str, Any]], where: str) -> None:
    """Each answerable row's gold chunk must be one of its contexts, or citation accuracy is meaningless."""
    seen: set[str] = set()
    for row in rows:
        rid = row["id"]
        if rid in seen:
            raise EvalInputError(f"{where}: duplicate id {rid!r}; ids key the generation cache and must be unique")
        seen.add(rid)
        if not row["contexts"]:
            raise EvalInputError(f"{where}: record {rid!r} has no contexts")
        if row["answerable"]:
            ids = [c["id"] for c in row["contexts"]]
            if row["gold_chunk_id"] not in ids:
                raise EvalInputError(f"{where}: record {rid!r} is answerable but its gold_chunk_id "
                                     f"{row['gold_chunk_id']!r} is not among its contexts {ids}")
