"""Writer (a), the offline default: the context sentence that holds the gold span, cited.

Deterministic and fast; it is also the fallback for every generated answer that fails the check. The
sentence is taken from the gold chunk's line that holds the span (Markdown list items and headings are
lines of their own), cut to the sentence(s) the span touches; a fragment shorter than
`MIN_SENTENCE_WORDS` (a list item like "Klausur, 90 Minuten") is prefixed with its section heading.
"""

from __future__ import annotations

import re
from typing import Sequence

from dataset_builder.chunking import sentence_spans
from dataset_builder.contract import format_answer
from dataset_builder.writers.base import AnswerWriter, WriteRequest

MIN_SENTENCE_WORDS = 4
_LIST_MARKER_RE = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)])\s+")
_HEADING_MARKER_RE = re.compile(r"^\s*#{1,6}\s+")


def gold_sentence(text: str, start: int, end: int) -> str:
    """The sentence(s) of `text` around [start, end), on the line(s) holding it, cleaned of markup."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    sentences = [(s, e) for s, e in sentence_spans(text, line_start, line_end) if s < end and e > start]
    s0 = sentences[0][0] if sentences else line_start
    s1 = sentences[-1][1] if sentences else line_end
    sentence = re.sub(r"\s+", " ", text[min(s0, start):max(s1, end)]).strip()
    sentence = _HEADING_MARKER_RE.sub("", sentence)
    return _LIST_MARKER_RE.sub("", sentence)


def heading_of(text: str) -> str:
    first = text.split("\n", 1)[0]
    return _HEADING_MARKER_RE.sub("", first).strip() if _HEADING_MARKER_RE.match(first) else ""


def extractive_answer(request: WriteRequest, cite_title: bool = True) -> str:
    chunk = request.gold_chunk
    start = request.span_start
    sentence = gold_sentence(chunk.text, start, start + len(request.gold_span))
    heading = heading_of(chunk.text)
    if len(sentence.split()) < MIN_SENTENCE_WORDS and heading and heading not in sentence:
        sentence = f"{heading}: {sentence}"
    if sentence[:1].islower() and not sentence[:2].isupper():
        sentence = sentence[0].upper() + sentence[1:]
    sentence = sentence.rstrip(":;,")
    return format_answer(sentence, request.gold_number, chunk.title if cite_title else None)


class ExtractiveWriter(AnswerWriter):
    name = "extractive"

    def __init__(self, cite_title: bool = True):
        self.cite_title = cite_title

    def write(self, requests: Sequence[WriteRequest]) -> list[str | None]:
        return [extractive_answer(r, self.cite_title) for r in requests]
