"""Writing the splits: one Parquet file per split, one row group per batch, all published together.

A build streams each split into a temp file beside its final name (`rag_de.atomic.atomic_open`) and
renames them all only once every split is complete, so a killed or failed build leaves the previous
dataset (or none) in place, never a mix of old and new splits. Memory stays at one batch of rows.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path

from dataset_builder.schema import SPLITS, arrow_schema

COMPRESSION = "zstd"


class SplitFiles:
    """`with SplitFiles(out_dir) as files: files.write(split, rows)`; the files appear at the end.

    `rows` are dicts with the dataset's columns (`schema.COLUMNS`); the Arrow schema carries the
    `datasets.Features`, so `load_dataset` reads exactly these types back. A split without rows gets
    no file (`datasets` cannot load an empty one), and an old file of that split is removed.
    """

    def __init__(self, out_dir: str | Path):
        self.out_dir = Path(out_dir)
        self.schema = arrow_schema()
        self.rows = dict.fromkeys(SPLITS, 0)
        self._writers: dict[str, object] = {}
        self._stack = ExitStack()

    def __enter__(self) -> "SplitFiles":
        return self

    def write(self, split: str, rows: list[dict]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        from rag_de.atomic import atomic_open

        if not rows:
            return
        writer = self._writers.get(split)
        if writer is None:
            fh = self._stack.enter_context(atomic_open(self.out_dir / f"{split}.parquet", "wb"))
            writer = self._writers[split] = pq.ParquetWriter(fh, self.schema, compression=COMPRESSION)
        writer.write_table(pa.Table.from_pylist(rows, schema=self.schema))
        self.rows[split] += len(rows)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            for writer in self._writers.values():
                writer.close()                  # the footer; the temp files stay open until the renames
        except BaseException:
            self._stack.__exit__(*sys.exc_info())   # removes every temp file
            raise
        self._stack.__exit__(exc_type, exc, tb)   # success: rename all; failure: remove all
        if exc_type is None:
            for split, n in self.rows.items():
                if n == 0:
                    (self.out_dir / f"{split}.parquet").unlink(missing_ok=True)
