"""Question generation: an LLM writes German questions about each chunk, the builder keeps the checked ones.

Per chunk, one request asks for `per_chunk` questions whose answer is a verbatim span of the chunk and
`unanswerable_per_chunk` questions near its topic that it does not answer, as JSON. Every proposed
question passes, in order: the reply parses (`invalid_json`), the span check (the answer occurs verbatim
in the chunk's body: `answer_not_in_chunk`, `answer_in_heading`), the rule filter (length, question
mark, not copying the chunk, not giving the answer away) and de-duplication on normalized text;
rejections are counted by reason for stats.json. Kept questions become ordinary `Question`s (answerable
ones with the span's offset in the document), so the rest of the builder runs on them unchanged.

The endpoint is the answer writer's: `ChatEndpoint` (HTTP: cached, concurrent, retried) or
`LocalChatModel` (transformers, cached per batch); a killed run resumes from the cache.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from dataset_builder.build_config import BuildConfig, QuestionsConfig
from dataset_builder.contract import render_chunk
from dataset_builder.examples import Corpus
from dataset_builder.records import Question

QUESTION_SYSTEM_PROMPT = (
    "Du erstellst Fragen für einen deutschen Frage-Antwort-Datensatz. Du bekommst einen Textabschnitt. "
    "Schreibe Fragen auf Deutsch, die ein Leser stellen würde, und gib zu jeder Frage die Antwort als "
    "wörtlichen, kurzen Auszug aus dem Abschnitt an (Zeichen für Zeichen kopiert, höchstens ein Satz). "
    "Schreibe außerdem Fragen zum selben Thema, die der Abschnitt nicht beantwortet. Antworte nur mit JSON."
)
_JSON_RE = re.compile(r"\{.*\}", re.DOTALL)
_EDGE = " \t\n\"'„“”«»‚‘’.,;:"
_FORMAT_EXAMPLE = {"fragen": [{"frage": "…?", "antwort": "wörtlicher Auszug"}], "unbeantwortbar": ["…?"]}
_PLACEHOLDERS = {"…?", "...?"}     # a small model copies the format example instead of writing questions


def question_messages(chunk, answerable: int, unanswerable: int) -> list[dict[str, str]]:
    """The request for one chunk (the chunk rendered as in the training prompt, then the task)."""
    task = (f"Schreibe {answerable} Frage(n) mit wörtlicher Antwort aus dem Abschnitt und {unanswerable} "
            f"Frage(n) zum selben Thema, die der Abschnitt nicht beantwortet. Format:\n"
            + json.dumps(_FORMAT_EXAMPLE, ensure_ascii=False))
    return [{"role": "system", "content": QUESTION_SYSTEM_PROMPT},
            {"role": "user", "content": f"{render_chunk(1, chunk)}\n\n{task}"}]


def parse_reply(text: str | None) -> tuple[list[tuple[str, str]], list[str]] | None:
    """(answerable (question, answer) pairs, unanswerable questions), or None when it is not such JSON."""
    if not text:
        return None
    match = _JSON_RE.search(text)
    try:
        data = json.loads(match.group(0)) if match else None
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    pairs = [(str(q.get("frage") or "").strip(), str(q.get("antwort") or ""))
             for q in data.get("fragen") or [] if isinstance(q, dict)]
    refusals = [str(q).strip() for q in data.get("unbeantwortbar") or [] if isinstance(q, (str, int, float))]
    return pairs, refusals


def normalize(text: str) -> str:
    """Question text for de-duplication: NFKC, case-folded, punctuation dropped, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _copies(question: str, chunk_words: set[tuple[str, ...]], n: int) -> bool:
    words = normalize(question).split()
    return any(tuple(words[i:i + n]) in chunk_words for i in range(len(words) - n + 1))


def question_problem(question: str, chunk_words: set[tuple[str, ...]], config: QuestionsConfig) -> str | None:
    """The rule filter: the reason a question is rejected, or None."""
    words = question.split()
    if question in _PLACEHOLDERS:
        return "copied_format_example"
    if len(words) < config.min_question_words:
        return "question_too_short"
    if len(words) > config.max_question_words:
        return "question_too_long"
    if not question.endswith("?"):
        return "no_question_mark"
    if _copies(question, chunk_words, config.copy_words):
        return "copies_chunk"
    return None


def locate_span(answer: str, chunk_text: str, heading: str) -> tuple[str, int] | str:
    """(span, offset in the chunk's body) of a verbatim answer, or the rejection reason.

    Surrounding quotes and sentence punctuation are trimmed first; the rest must occur exactly."""
    span = answer.strip(_EDGE)
    if not span:
        return "empty_answer"
    prefix = len(heading) + 1 if heading else 0
    at = chunk_text.find(span, prefix)
    if at < 0:
        return "answer_in_heading" if span in chunk_text else "answer_not_in_chunk"
    return span, at - prefix


@dataclass
class GenerationReport:
    """stats.json `questions`: what was asked, proposed, kept and rejected (by reason)."""

    chunks: int = 0
    replies: int = 0
    failed_requests: int = 0
    proposed_answerable: int = 0
    proposed_unanswerable: int = 0
    kept_answerable: int = 0
    kept_unanswerable: int = 0
    passed_span_check: int = 0
    rejected: Counter = field(default_factory=Counter)

    def as_dict(self, generator_stats: dict) -> dict:
        proposed = self.proposed_answerable + self.proposed_unanswerable
        return {"chunks": self.chunks, "replies": self.replies, "failed_requests": self.failed_requests,
                "proposed": proposed, "proposed_answerable": self.proposed_answerable,
                "proposed_unanswerable": self.proposed_unanswerable,
                "kept": self.kept_answerable + self.kept_unanswerable, "kept_answerable": self.kept_answerable,
                "kept_unanswerable": self.kept_unanswerable,
                "span_check_pass_rate": round(self.passed_span_check / self.proposed_answerable, 4)
                if self.proposed_answerable else None,
                "rejected": dict(sorted(self.rejected.items())), "rejected_total": sum(self.rejected.values()),
                "generator": generator_stats}


def make_generator(config: BuildConfig, cache_dir: str | Path):
    """The chat backend named by `config.questions.generator`, caching under `cache_dir`."""
    q = config.questions
    if q.generator == "transformers":
        from dataset_builder.writers.transformers_writer import LocalChatModel

        return LocalChatModel(config.transformers, q.max_tokens, Path(cache_dir) / "questions-transformers")
    from dataset_builder.writers.openai_writer import ChatEndpoint

    return ChatEndpoint(config.openai, Path(cache_dir) / "questions-openai",
                        {"temperature": q.temperature, "max_tokens": q.max_tokens})


def generate_questions(corpus: Corpus, chunk_ids: list[int], config: BuildConfig, generator,
                       progress: bool = False) -> tuple[list[Question], GenerationReport]:
    """Questions for the chunks `chunk_ids` (corpus indices), in chunk order, and the report."""
    q_config = config.questions
    if q_config.max_chunks:
        chunk_ids = chunk_ids[:q_config.max_chunks]
    report = GenerationReport(chunks=len(chunk_ids))
    seen: set[str] = set()
    out: list[Question] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(chunk_ids), desc="questions", unit="chunk", dynamic_ncols=True)
    try:
        for b in range(0, len(chunk_ids), q_config.batch_size):
            batch = chunk_ids[b:b + q_config.batch_size]
            messages = [question_messages(corpus.chunks[c], q_config.per_chunk, q_config.unanswerable_per_chunk)
                        for c in batch]
            for c, reply in zip(batch, generator.complete(messages)):
                out += _keep(corpus, c, reply, q_config, seen, report)
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    return out, report


def _keep(corpus: Corpus, c: int, reply: str | None, config: QuestionsConfig, seen: set[str],
          report: GenerationReport) -> list[Question]:
    """The checked questions of one chunk's reply (rejections counted in `report`)."""
    if reply is None:
        report.failed_requests += 1
        return []
    parsed = parse_reply(reply)
    if parsed is None:
        report.rejected["invalid_json"] += 1
        return []
    report.replies += 1
    pairs, refusals = parsed[0][:config.per_chunk], parsed[1][:config.unanswerable_per_chunk]
    report.proposed_answerable += len(pairs)
    report.proposed_unanswerable += len(refusals)
    chunk = corpus.chunks[c]
    d = corpus.chunk_doc[c]
    doc = corpus.docs[d]
    span_info = corpus.doc_spans[d][c - corpus.doc_first[d]]
    words = normalize(chunk.text).split()
    chunk_words = {tuple(words[i:i + config.copy_words]) for i in range(len(words) - config.copy_words + 1)}
    kept = []
    for i, (question, answer) in enumerate(pairs):
        found = locate_span(answer, chunk.text, span_info.heading)
        if isinstance(found, str):
            report.rejected[found] += 1
            continue
        report.passed_span_check += 1
        span, offset = found
        problem = question_problem(question, chunk_words, config)
        if problem is None and len(span.split()) > config.max_answer_words:
            problem = "answer_too_long"
        if problem is None and normalize(span) and normalize(span) in normalize(question):
            problem = "answer_in_question"
        problem = problem or _duplicate(question, seen)
        if problem:
            report.rejected[problem] += 1
            continue
        kept.append(Question(f"{chunk.id}?q{i}", question, doc.doc_id, span, span_info.start + offset, True,
                             doc.origin, doc.group, f"{doc.where}, chunk {chunk.id}, question {i}"))
        report.kept_answerable += 1
    for i, question in enumerate(refusals):
        problem = question_problem(question, chunk_words, config) or _duplicate(question, seen)
        if problem:
            report.rejected[problem] += 1
            continue
        kept.append(Question(f"{chunk.id}?u{i}", question, doc.doc_id, "", None, False, doc.origin, doc.group,
                             f"{doc.where}, chunk {chunk.id}, unanswerable question {i}"))
        report.kept_unanswerable += 1
    return kept


def _duplicate(question: str, seen: set[str]) -> str | None:
    key = normalize(question)
    if key in seen:
        return "duplicate"
    seen.add(key)
    return None
