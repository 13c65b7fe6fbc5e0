"""The demo's search: BM25 (the project's German index) over chunks, from the dataset or from uploads.

The corpus is the set of unique context chunks in the dataset's splits: exactly the passages the
model saw during training and evaluation, each with its metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from dataset_builder.contract import Chunk


@dataclass
class Hit:
    chunk: Chunk
    score: float


class ChunkIndex:
    """BM25 over chunk title + text (titles carry module names and codes people ask about)."""

    def __init__(self, chunks: Sequence[Chunk]):
        from dataset_builder.retrieval import BM25Index

        self.chunks = list(chunks)
        self._bm25 = BM25Index([searchable_text(c) for c in self.chunks])

    def __len__(self) -> int:
        return len(self.chunks)

    def search(self, query: str, k: int) -> list[Hit]:
        return [Hit(self.chunks[i], float(s)) for i, s in self._bm25.search(query, k)]


def searchable_text(chunk: Chunk) -> str:
    fields = [chunk.title] + [str(v) for v in chunk.metadata.values() if isinstance(v, (str, int, float))]
    return " ".join(f for f in fields if f) + "\n" + chunk.text


def unique_chunks(context_lists: Iterable[Iterable[dict]]) -> list[Chunk]:
    """Chunks from a `contexts` column, first occurrence of each id kept, order stable."""
    seen: dict[str, Chunk] = {}
    for contexts in context_lists:
        for record in contexts or ():
            chunk = Chunk.from_record(record)
            seen.setdefault(chunk.id, chunk)
    return list(seen.values())


def load_corpus(dataset: str, revision: str | None = None) -> list[Chunk]:
    """All unique contexts of every split of `dataset` (Hub id or local folder) via `datasets`."""
    from datasets import load_dataset

    splits = load_dataset(dataset, revision=revision)
    chunks: dict[str, Chunk] = {}
    for name in splits:
        if "contexts" not in splits[name].column_names:
            raise ValueError(f"dataset {dataset} split {name!r} has no `contexts` column "
                             f"(columns: {splits[name].column_names}); build it with `rag-de build`")
        for chunk in unique_chunks(splits[name]["contexts"]):
            chunks.setdefault(chunk.id, chunk)
    return list(chunks.values())
