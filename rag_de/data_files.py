"""A dataset's `<split>.parquet` files in a local folder, and its column check: one way for every part.

Training and evaluation both accept a `rag-de build` folder or a downloaded dataset repo; they find the
split files and reject a dataset without the columns they need the same way, so a folder that works for
one works for the other and the error reads alike. Only the standard library loads here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

SPLITS = ("train", "validation", "test")
# `rag-de build` writes <split>.parquet; a Hub repo holds data/<split>-00000-of-00001.parquet.
SPLIT_PATTERNS = ("{split}.parquet", "{split}-*.parquet", "{split}/*.parquet")


def split_files(folder: str | Path, split: str) -> list[Path]:
    """The parquet files of `split`: at the top of `folder`, else under `data/`, else anywhere below."""
    folder = Path(folder)
    for base in ("", "data/", "**/"):
        found = sorted({p for pattern in SPLIT_PATTERNS for p in folder.glob(base + pattern.format(split=split))})
        if found:
            return found
    return []


def data_files(folder: str | Path, splits: Iterable[str] = SPLITS) -> dict[str, list[str]]:
    """`{split: [file, ...]}` for the splits found, ready for `load_dataset("parquet", data_files=...)`."""
    return {split: [str(p) for p in files] for split in splits if (files := split_files(folder, split))}


def require_split_files(folder: str | Path, split: str, error: type[Exception] = ValueError) -> list[Path]:
    """`split_files`, or `error` naming the folder, the names looked for, the splits there and the fix."""
    files = split_files(folder, split)
    if not files:
        found = sorted({p.stem.split("-")[0] for p in Path(folder).rglob("*.parquet")})
        raise error(f"no parquet file for split {split!r}, in {folder} (looked for {split}.parquet, "
                    f"{split}-*.parquet, {split}/*.parquet, also under data/; splits there: {found or 'none'}); "
                    "pick a split that exists or build one with `rag-de build --out DIR`")
    return files


def check_columns(columns: Iterable[str], required: Iterable[str], where: str, needed_by: str,
                  error: type[Exception] = ValueError) -> None:
    """Raise `error` when a column the caller needs is missing, naming what is there and the fix."""
    columns = list(columns)
    missing = [c for c in required if c not in columns]
    if missing:
        raise error(f"missing column(s) {missing}, in {where} (has {columns}); {needed_by} needs the "
                    "spaces-rag-de schema (dataset_builder/schema.py): rebuild the dataset with `rag-de build`")
