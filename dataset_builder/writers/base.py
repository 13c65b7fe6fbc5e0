"""What every answer writer receives and returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from dataset_builder.contract import Chunk


@dataclass
class WriteRequest:
    question: str
    contexts: list[Chunk]   # in prompt order
    gold_number: int        # 1-based position of the gold chunk in `contexts`
    gold_span: str
    span_start: int         # offset of `gold_span` in the gold chunk's text

    @property
    def gold_chunk(self) -> Chunk:
        return self.contexts[self.gold_number - 1]


class AnswerWriter:
    """Turns requests into answers; `None` marks a request the writer could not serve (an error)."""

    name = "base"

    def write(self, requests: Sequence[WriteRequest]) -> list[str | None]:
        raise NotImplementedError

    def stats(self) -> dict:
        return {}

    def close(self) -> None:
        pass
