"""The prompt contract: the one place that defines what the model sees and what it must answer.

Training, evaluation and the demo import these functions; none of them re-types the prompt. The
contract:

* a German system prompt (`SYSTEM_PROMPT`) that asks for answers only from the given chunks, in full
  sentences, with the chunk cited as `[n]`, and for `REFUSAL` when the chunks lack the answer;
* a user turn holding the numbered context chunks, each with its metadata (title, source and free
  fields such as module code and ECTS), then the question;
* an assistant answer that starts with its source, `Laut Abschnitt [n] (<title>): <full sentence(s)>`
  (n = the chunk's number in the prompt, 1-based; the title part is optional), or exactly `REFUSAL`,
  which cites nothing.

Why the source comes first: the model commits to a chunk before it writes, then copies from that chunk
("attribute first, then generate"); and "answer or refuse" is one decision at the first word (`Laut`
or `Leider`) instead of being tangled up with how answer sentences usually begin (see `REFUSAL`).
`parse_answer` still reads citations anywhere in the text.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

# The refusal opens with a word no answer opens with: "Die", the most common first word of an answer
# sentence, made small models slide from an answer into the refusal (and learn to refuse everything).
# It is short: every token of it is a training target, and the decision is its first word.
REFUSAL = "Leider enthalten die bereitgestellten Informationen keine Antwort auf diese Frage."
ANSWER_LEAD = "Laut Abschnitt"
# Short (~70 tokens): it precedes every training row and every prompt, and on a CPU each prompt token costs
# training time that the decision tokens need more.
SYSTEM_PROMPT = (
    "Antworte nur anhand der nummerierten Abschnitte, in ganzen Sätzen, und beginne mit der Quelle: „"
    + ANSWER_LEAD + " [n]: …“. Steht die Antwort nicht darin, antworte: „" + REFUSAL + "“"
)

CONTEXT_HEADER = "Kontext:"
QUESTION_PREFIX = "Frage:"
# Labels for the metadata shown above each chunk's text; other keys are shown as they are.
METADATA_LABELS = {
    "title": "Titel",
    "source": "Quelle",
    "module_code": "Modulkürzel",
    "module_name": "Modulname",
    "ects": "ECTS",
    "semester": "Semester",
    "responsible": "Modulverantwortung",
    "name": "Name",
    "type": "Art",
    "language": "Sprache",
    "page": "Seite",          # PDF pages (dataset_builder.document_reader)
    "section": "Kapitel",     # heading sections of DOCX/HTML/Markdown documents
}
CITATION_RE = re.compile(r"\[(\d{1,3})\]")
SOURCE_SUFFIX_RE = re.compile(r"\s*\((?:Quelle|Source):[^)]*\)\s*$")
# The lead of a cited answer: "Laut Abschnitt [2] (Titel): " (title optional).
LEAD_RE = re.compile(r"^\s*" + ANSWER_LEAD + r"\s*\[\d{1,3}\]\s*(?:\((?:[^()]|\([^()]*\))*\))?\s*:\s*")


@dataclass
class Chunk:
    """One retrievable piece of a source document, with a stable id and its metadata."""

    id: str
    text: str
    title: str = ""
    source: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict:
        """Parquet-friendly form: `metadata` is JSON text so every source shares one schema.

        Key order is kept (not sorted): chunks rebuilt with `from_record` render exactly as the
        original, so a prompt re-rendered from the `contexts` column equals the training prompt.
        """
        return {
            "id": self.id, "title": self.title, "source": self.source, "text": self.text,
            "metadata": json.dumps(self.metadata, ensure_ascii=False),
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> "Chunk":
        meta = record.get("metadata") or {}
        if isinstance(meta, str):
            meta = json.loads(meta) if meta.strip() else {}
        return cls(id=str(record["id"]), text=str(record["text"]), title=str(record.get("title") or ""),
                   source=str(record.get("source") or ""), metadata=dict(meta))


def _as_chunk(chunk: Chunk | Mapping[str, Any]) -> Chunk:
    return chunk if isinstance(chunk, Chunk) else Chunk.from_record(chunk)


def _shown_in(value: str, title: str) -> bool:
    """Whether `value` appears in `title` as whole words ("DS-102" in "DS-102 Analysis"; "1" is not in it)."""
    return bool(title) and re.search(r"(?<!\w)" + re.escape(value) + r"(?!\w)", title) is not None


def render_chunk(number: int, chunk: Chunk | Mapping[str, Any]) -> str:
    chunk = _as_chunk(chunk)
    fields = [f"{METADATA_LABELS['title']}: {chunk.title}"] if chunk.title else []
    if chunk.source:
        fields.append(f"{METADATA_LABELS['source']}: {chunk.source}")
    for key, value in chunk.metadata.items():
        # A value the title already shows (module code, module name) is not repeated: it would add
        # ~20 tokens per chunk and no information.
        if value is None or value == "" or _shown_in(str(value), chunk.title):
            continue
        fields.append(f"{METADATA_LABELS.get(key, key)}: {value}")
    header = f"[{number}] " + " | ".join(fields) if fields else f"[{number}]"
    return f"{header}\n{chunk.text.strip()}"


def render_user_turn(question: str, chunks: Sequence[Chunk | Mapping[str, Any]]) -> str:
    blocks = [render_chunk(i, c) for i, c in enumerate(chunks, start=1)]
    context = "\n\n".join(blocks) if blocks else "(keine Abschnitte)"
    return f"{CONTEXT_HEADER}\n{context}\n\n{QUESTION_PREFIX} {question.strip()}"


def prompt_messages(question: str, chunks: Sequence[Chunk | Mapping[str, Any]]) -> list[dict[str, str]]:
    """The chat turns sent at inference: system + user. Training's prompt is exactly this."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": render_user_turn(question, chunks)},
    ]


def chat_messages(question: str, chunks: Sequence[Chunk | Mapping[str, Any]], answer: str) -> list[dict[str, str]]:
    """The full training conversation: the inference prompt plus the assistant's target answer."""
    return prompt_messages(question, chunks) + [{"role": "assistant", "content": answer}]


def format_answer(sentence: str, number: int, title: str | None = None) -> str:
    """A cited answer: `Laut Abschnitt [n] (title): sentence.` (the title part only when given)."""
    sentence = sentence.strip()
    if sentence and sentence[-1] not in ".!?":
        sentence += "."
    source = f"{ANSWER_LEAD} [{number}]" + (f" ({title})" if title else "")
    return f"{source}: {sentence}"


def recite_answer(answer: str, number: int, title: str | None = None) -> str:
    """A generated answer in the contract's form, citing chunk `number` first.

    An answer that already opens with `Laut Abschnitt [n]` (as in "Laut Abschnitt [2] umfasst das Modul
    5 ECTS.") keeps its wording and gets the title after the citation; any other is rewritten as
    `format_answer(<its text without markers>, number, title)`.
    """
    answer = answer.strip()
    opening = f"{ANSWER_LEAD} [{number}]"
    if answer.startswith(opening):
        rest = answer[len(opening):]
        if title and not rest.lstrip().startswith("("):
            rest = f" ({title})" + rest
        return opening + rest
    return format_answer(parse_answer(answer).text, number, title)


def split_messages(messages: Sequence[Mapping[str, str]]) -> tuple[list[dict], list[dict]]:
    """Conversation -> (prompt turns, completion turns), as TRL's prompt-completion rows want them."""
    messages = [dict(m) for m in messages]
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("a training conversation must end with an assistant turn")
    return messages[:-1], messages[-1:]


def _normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[„“”\"'«»]", "", text)
    return re.sub(r"\s+", " ", text).strip(" .!?")


_REFUSAL_NORM = _normalize(REFUSAL)


@dataclass
class ParsedAnswer:
    text: str                # the answer without its source lead, citation markers and source suffix
    cited: list[int]         # 1-based chunk numbers, in order of first appearance
    cited_chunk_ids: list[str]
    is_refusal: bool


def parse_answer(answer: str, chunks: Sequence[Chunk | Mapping[str, Any]] | None = None) -> ParsedAnswer:
    """Read a model's answer back into (text, cited chunk numbers/ids, is_refusal).

    Citations outside 1..len(chunks) are kept in `cited` (they are wrong citations, which evaluation
    counts) but have no chunk id.
    """
    raw = answer.strip()
    cited: list[int] = []
    for match in CITATION_RE.finditer(raw):
        number = int(match.group(1))
        if number not in cited:
            cited.append(number)
    text = SOURCE_SUFFIX_RE.sub("", LEAD_RE.sub("", raw))
    text = CITATION_RE.sub("", text)
    text = re.sub(r"\s+([.,;:!?])", r"\1", re.sub(r"[ \t]+", " ", text)).strip()
    is_refusal = _normalize(text).startswith(_REFUSAL_NORM) or _normalize(text) == _REFUSAL_NORM
    ids: list[str] = []
    if chunks is not None:
        chunk_list = [_as_chunk(c) for c in chunks]
        ids = [chunk_list[n - 1].id for n in cited if 1 <= n <= len(chunk_list)]
    return ParsedAnswer(text=text, cited=cited, cited_chunk_ids=ids, is_refusal=is_refusal)


def contexts_from_column(contexts: Iterable[Mapping[str, Any]]) -> list[Chunk]:
    """The dataset's `contexts` column (list of records) -> chunks, in prompt order."""
    return [Chunk.from_record(c) for c in contexts]


def render_prompt_text(tokenizer, question: str, chunks: Sequence[Chunk | Mapping[str, Any]]) -> str:
    """The exact text the model is conditioned on at inference (chat template + generation prompt).

    Evaluation and the demo tokenize this string with `add_special_tokens=False`; training's prompt
    part (TRL's prompt-completion rows) renders to the same text, which a test checks.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"the tokenizer of {getattr(tokenizer, 'name_or_path', '?')} has no chat template; "
            "use an instruct/chat model or set one (tokenizer.chat_template = ...)"
        )
    return tokenizer.apply_chat_template(prompt_messages(question, chunks), tokenize=False,
                                         add_generation_prompt=True)
