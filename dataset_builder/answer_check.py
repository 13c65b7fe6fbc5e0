"""Is a generated answer usable as a training target? It must be grounded and cite the right chunk.

An answer passes when it (1) is not the refusal, (2) cites the gold chunk's number and no number outside
the prompt's chunks, (3) is at most `max_answer_words` words, and (4) contains the gold span after
normalization (NFKC, case, quotes, whitespace), or paraphrases it faithfully: at least `min_overlap` of
the span's stemmed content words occur in the answer and every number in the span occurs verbatim
(a paraphrase may reorder or inflect words, but must not change a figure).
"""

from __future__ import annotations

import re
import unicodedata

from dataset_builder.contract import parse_answer

_NUMBER_RE = re.compile(r"\d+(?:[.,]\d+)*")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = re.sub(r"[„“”\"'«»‚‘’`]", "", text)
    text = re.sub(r"[\s\u00a0]+", " ", text)
    return text.strip(" .,;:!?")


def span_overlap(answer: str, span: str) -> float:
    """Share of the span's stemmed content words found in the answer (1.0 for a span without any)."""
    from dataset_builder.retrieval import tokenize_de

    span_tokens, answer_tokens = tokenize_de([span, answer])
    if not span_tokens:
        return 1.0
    present = set(answer_tokens)
    return sum(t in present for t in span_tokens) / len(span_tokens)


def check_answer(answer: str, gold_span: str, gold_number: int, n_chunks: int,
                 min_overlap: float = 0.8, max_answer_words: int = 120) -> str | None:
    """None when the answer passes, else the reason it fails (counted in stats.json)."""
    if not answer or not answer.strip():
        return "empty"
    parsed = parse_answer(answer)
    if parsed.is_refusal:
        return "refusal"
    if gold_number not in parsed.cited:
        return "missing_gold_citation"
    if any(not 1 <= n <= n_chunks for n in parsed.cited):
        return "citation_out_of_range"
    if len(parsed.text.split()) > max_answer_words:
        return "too_long"
    if normalize(gold_span) in normalize(parsed.text):
        return None
    numbers = _NUMBER_RE.findall(gold_span)
    if any(n not in parsed.text for n in numbers):
        return "number_changed"
    if span_overlap(parsed.text, gold_span) < min_overlap:
        return "span_missing"
    return None
