"""Writer (a), the offline default: the context sentence that holds the gold span, cited.

Deterministic and fast; it is also the fallback for every generated answer that fails the check. The
sentence is taken from the gold chunk's line that holds the span (Markdown list items and headings are
lines of their own), cut to the sentence(s) the span touches; a fragment shorter than
`MIN_SENTENCE_WORDS` (a list item like "Klausur, 90 Minuten") is prefixed with its section heading.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from typing import Sequence

from dataset_builder.chunking import _SENTENCE_END_RE, _is_abbreviation, _strip, sentence_spans
from dataset_builder.contract import format_answer
from dataset_builder.writers.base import AnswerWriter, WriteRequest

MIN_SENTENCE_WORDS = 4
_LIST_MARKER_RE = re.compile(r"^\s*(?:[-*+•]|\d{1,2}[.)])\s+")
_HEADING_MARKER_RE = re.compile(r"^\s*#{1,6}\s+")


def _sentence_window(text: str, line_start: int, line_end: int, start: int, end: int) -> tuple[int, int]:
    """Sentence boundaries around [start, end): the last one at or before `start`, the first one at or
    after `end` (line ends count). Splitting only this window gives the same sentences there as
    splitting the whole line (a boundary is real unless the piece before it ends in an abbreviation,
    which depends on that piece alone), and is ~3x cheaper than splitting a long line."""
    bounds = [line_start, *(m.end() for m in _SENTENCE_END_RE.finditer(text, line_start, line_end)), line_end]

    def real(j: int) -> bool:                  # is cut j (0 < j < len(bounds) - 1) a sentence boundary?
        return not _is_abbreviation(text, *_strip(text, bounds[j - 1], bounds[j]))

    j = bisect_right(bounds, start, 1, len(bounds) - 1) - 1       # last cut <= start (0: line start)
    while j > 0 and not real(j):
        j -= 1
    k = bisect_left(bounds, end, 1, len(bounds) - 1)                # first cut >= end (last: line end)
    while k < len(bounds) - 1 and not real(k):
        k += 1
    return bounds[j], bounds[k]


def gold_sentence(text: str, start: int, end: int) -> str:
    """The sentence(s) of `text` around [start, end), on the line(s) holding it, cleaned of markup."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    window_start, window_end = _sentence_window(text, line_start, line_end, start, end)
    sentences = [(s, e) for s, e in sentence_spans(text, window_start, window_end) if s < end and e > start]
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


def answer_candidates(question: str, contexts: Sequence, number: int,
                      cite_title: bool = True) -> tuple[list[str], list[str]]:
    """(answers, their sentences): every answer this writer could write citing chunk `number`, one per
    sentence of its text (headings are not answers), in the same form as `extractive_answer`. Evaluation
    lets a model's probabilities choose among them (answering.answer.choose_answer)."""
    chunk = contexts[number - 1]
    answers: list[str] = []
    sentences: list[str] = []
    for span_start, span_end in sentence_spans(chunk.text):
        # A span may run over line ends ("## Inhalte\nDas Kolloquium besteht ..."): each line is a piece of
        # its own, and only heading lines are dropped (dropping the whole span lost the sentence under it).
        start = span_start
        for line in chunk.text[span_start:span_end].split("\n"):
            piece_start, start = start, start + len(line) + 1
            if not line.strip() or _HEADING_MARKER_RE.match(line.lstrip()):
                continue
            offset = len(line) - len(line.lstrip())
            answer = extractive_answer(WriteRequest(question, list(contexts), number, line.strip(),
                                                    piece_start + offset), cite_title)
            if answer not in answers:
                answers.append(answer)
                sentences.append(line.strip())
    return answers, sentences


class ExtractiveWriter(AnswerWriter):
    name = "extractive"

    def __init__(self, cite_title: bool = True):
        self.cite_title = cite_title

    def write(self, requests: Sequence[WriteRequest]) -> list[str | None]:
        return [extractive_answer(r, self.cite_title) for r in requests]
