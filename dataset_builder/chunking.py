"""Split a document into retrievable chunks: by heading, then paragraph, then sentence, within a token budget.

A chunk never crosses a heading; the heading line is kept at the top of each of its chunks, so a chunk
such as "## Prüfungsform / Klausur (90 Minuten)" still says what it is about when it stands alone in a
prompt. Chunk ids are `<doc_id>#<n>` (n = 0, 1, ... in document order), stable as long as the document
text does not change. The builder also needs where each chunk's body lies in the document (to find the
chunk that holds a SQuAD answer offset), hence `chunk_spans`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from dataset_builder.contract import Chunk

# Token estimate calibrated on XQuAD-de with the SmolLM2 tokenizer (the embedded base model):
# 39,308 tokens for 14,940 words + 2,725 punctuation marks, i.e. ~2.45 tokens per word + 1 per mark.
# Tokenizers of 7B models (Mistral, Llama-2) need fewer, so the estimate errs on the safe side.
TOKENS_PER_WORD = 2.45
TOKENS_PER_MARK = 1.0
DEFAULT_MAX_TOKENS = 256

_WORD_RE = re.compile(r"\w+")
_MARK_RE = re.compile(r"[^\w\s]")
_HEADING_RE = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_PARAGRAPH_BREAK_RE = re.compile(r"\n[ \t]*\n+")
# A sentence ends at . ! ? (optionally followed by a closing quote/bracket) before whitespace and an
# upper-case letter, digit or opening quote; abbreviations and ordinals ("3. Semester") are re-joined.
_SENTENCE_END_RE = re.compile(r"[.!?…][\"'“”»)\]]*\s+(?=[A-ZÄÖÜ0-9„\"'»(\[-])")
_ABBREVIATIONS = frozenset(
    "z.b d.h u.a o.ä bzw ca dr prof nr vgl usw etc inkl ggf evtl max min std abs bzgl sog s jh mio mrd "
    "st str tel hr fr mr mrs e.v i.d.r u.u z.t u.v.m".split()
)


def estimate_tokens(text: str) -> int:
    """A fast tokenizer-free estimate (see TOKENS_PER_WORD); good enough for a chunk budget."""
    return math.ceil(len(_WORD_RE.findall(text)) * TOKENS_PER_WORD + len(_MARK_RE.findall(text)) * TOKENS_PER_MARK)


class TokenCounter:
    """Counts tokens with a real tokenizer when one is given, else with `estimate_tokens`."""

    def __init__(self, tokenizer: Any = None):
        self.tokenizer = tokenizer

    @classmethod
    def from_name(cls, name: str | None) -> "TokenCounter":
        if not name:
            return cls()
        from rag_de.modeling import load_tokenizer

        return cls(load_tokenizer(name))

    def __call__(self, text: str) -> int:
        if self.tokenizer is None:
            return estimate_tokens(text)
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


@dataclass(frozen=True, slots=True)
class Span:
    """A chunk's body as `text[start:end]` of the document, and the heading line it sits under."""

    start: int
    end: int
    heading: str = ""


def sections(text: str) -> Iterator[tuple[str, int, int]]:
    """(heading line, body start, body end) per heading; text before the first heading has none."""
    matches = list(_HEADING_RE.finditer(text))
    first = matches[0].start() if matches else len(text)
    if text[:first].strip():
        yield "", 0, first
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        yield match.group(0).strip(), match.end(), end


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _pieces(text: str, start: int, end: int, pattern: re.Pattern) -> list[tuple[int, int]]:
    out, pos = [], start
    for match in pattern.finditer(text, start, end):
        cut = match.start() if pattern is _PARAGRAPH_BREAK_RE else match.end()
        out.append(_strip(text, pos, cut))
        pos = cut
    out.append(_strip(text, pos, end))
    return [(s, e) for s, e in out if e > s]


def _is_abbreviation(text: str, start: int, end: int) -> bool:
    """True when the piece ends in an abbreviation or ordinal, so the split after it was wrong."""
    last = text[start:end].rstrip()
    if not last.endswith("."):
        return False
    word = last[:-1].rsplit(None, 1)[-1].lower() if last[:-1].split() else ""
    return word in _ABBREVIATIONS or word.isdigit() and len(word) <= 2 or (len(word) == 1 and word.isalpha())


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """German sentence boundaries inside `text[start:end]` (abbreviations and ordinals do not split)."""
    end = len(text) if end is None else end
    raw = _pieces(text, start, end, _SENTENCE_END_RE)
    merged: list[tuple[int, int]] = []
    for s, e in raw:
        if merged and _is_abbreviation(text, *merged[-1]):
            merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def _word_windows(text: str, start: int, end: int, budget: int, count: Callable[[str], int]) -> list[tuple[int, int]]:
    """Last resort for a sentence over budget: cut between words."""
    words = [m.span() for m in re.finditer(r"\S+", text[start:end])]
    out, first = [], 0
    while first < len(words):
        last = first
        while last + 1 < len(words) and count(text[start + words[first][0]:start + words[last + 1][1]]) <= budget:
            last += 1
        out.append((start + words[first][0], start + words[last][1]))
        first = last + 1
    return out


def _pack(text: str, units: list[tuple[int, int]], budget: int, count: Callable[[str], int]) -> list[tuple[int, int]]:
    """Greedily join consecutive units while the joined text stays within budget."""
    out: list[tuple[int, int]] = []
    for s, e in units:
        if out and count(text[out[-1][0]:e]) <= budget:
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def chunk_spans(text: str, max_tokens: int = DEFAULT_MAX_TOKENS,
                count_tokens: Callable[[str], int] = estimate_tokens) -> list[Span]:
    """Where the chunks of `text` lie: sections by heading, packed paragraphs, split sentences."""
    spans: list[Span] = []
    for heading, start, end in sections(text):
        budget = max(16, max_tokens - (count_tokens(heading) if heading else 0))
        units: list[tuple[int, int]] = []
        for p_start, p_end in _pieces(text, start, end, _PARAGRAPH_BREAK_RE):
            if count_tokens(text[p_start:p_end]) <= budget:
                units.append((p_start, p_end))
                continue
            for s_start, s_end in sentence_spans(text, p_start, p_end):
                if count_tokens(text[s_start:s_end]) <= budget:
                    units.append((s_start, s_end))
                else:
                    units.extend(_word_windows(text, s_start, s_end, budget, count_tokens))
        packed = _pack(text, units, budget, count_tokens)
        spans.extend(Span(s, e, heading) for s, e in packed)
    return spans


def span_text(text: str, span: Span) -> str:
    body = text[span.start:span.end]
    return f"{span.heading}\n{body}" if span.heading else body


def chunk_document(text: str, doc_id: str, title: str = "", source: str = "",
                   metadata: dict[str, Any] | None = None, max_tokens: int = DEFAULT_MAX_TOKENS,
                   count_tokens: Callable[[str], int] = estimate_tokens) -> list[Chunk]:
    """A document -> chunks with ids `<doc_id>#<n>`, each carrying the document's title/source/metadata."""
    return [
        Chunk(id=f"{doc_id}#{n}", text=span_text(text, span), title=title, source=source,
              metadata=dict(metadata or {}))
        for n, span in enumerate(chunk_spans(text, max_tokens, count_tokens))
    ]
