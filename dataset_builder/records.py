"""What the readers produce (documents and questions) and how bad input is reported.

Bad input never disappears silently: a file that cannot be read at all raises `InputError` (naming the
file, the position and the fix); a bad record inside a readable file is either raised (strict mode) or
skipped and counted by reason in `SkipLog`, which ends up in stats.json with the file and record named.
"""

from __future__ import annotations

import codecs
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from rag_de.errors import UserError

SAMPLES_PER_REASON = 20   # records listed per skip reason in stats.json (all are counted)


class InputError(UserError):
    """An input cannot be used; the message names the file, the record and the fix."""


@dataclass(slots=True)   # slots: a 100k-question build holds every record at once
class Document:
    doc_id: str        # unique across all inputs; chunk ids are `<doc_id>#<n>`
    text: str
    title: str
    source: str        # shown to the model as "Quelle"
    metadata: dict[str, Any]
    group: str         # the split unit (`source_doc` column): a SQuAD article, a corpus file
    origin: str        # e.g. "xquad-de", "sample-modules"
    where: str         # file (and record) for messages


@dataclass(slots=True)
class Question:
    id: str
    question: str
    doc_id: str | None     # the document the question is about (None: about nothing in the corpus)
    gold_span: str         # "" when unanswerable
    answer_start: int | None   # offset of the span in the document text, when the input gives one
    answerable: bool
    origin: str
    group: str
    where: str


@dataclass
class SkipLog:
    """Counts of skipped/repaired records by reason, with the first few named."""

    strict: bool = False
    counts: Counter = field(default_factory=Counter)
    samples: dict[str, list[dict]] = field(default_factory=dict)

    def skip(self, reason: str, where: str, detail: str, fix: str = "") -> None:
        if self.strict:
            raise InputError(f"{where}: {detail}" + (f"; {fix}" if fix else "") + f" [{reason}]")
        self._count(reason, where, detail)

    def note(self, reason: str, where: str, detail: str) -> None:
        """A repaired record: counted and listed, but kept."""
        self._count(reason, where, detail)

    def _count(self, reason: str, where: str, detail: str) -> None:
        self.counts[reason] += 1
        listed = self.samples.setdefault(reason, [])
        if len(listed) < SAMPLES_PER_REASON:
            listed.append({"record": where, "detail": detail})

    def as_dict(self) -> dict:
        return {"counts": dict(sorted(self.counts.items())), "examples": self.samples}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _not_utf8(path: Path, byte: int, offset: int, line: int) -> InputError:
    return InputError(
        f"{path}: not UTF-8 (byte 0x{byte:02x} at offset {offset}, line {line}); "
        f"convert the file, e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed.{path.suffix.lstrip('.')}`"
    )


def read_utf8(path: Path) -> str:
    """File text as UTF-8, or an InputError with the byte offset and line of the first bad byte."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _not_utf8(path, data[exc.start], exc.start, data[: exc.start].count(b"\n") + 1) from None
    return text[1:] if text.startswith("\ufeff") else text


def load_json(path: Path) -> Any:
    text = read_utf8(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
                         "fix the file (e.g. check it with `python -m json.tool`)") from None


def iter_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, record) per non-empty line; a malformed line raises an InputError naming it.

    The file is read line by line: a large corpus never exists as one string plus a list of its lines
    plus all parsed records at once (that transient peak, interleaved with the kept texts, used to stay
    in the process as fragmented heap). Lines end at "\n" only (JSON text may hold U+2028 and the like).
    """
    offset = 0
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            start = 3 if number == 1 and raw.startswith(codecs.BOM_UTF8) else 0
            try:
                line = raw[start:].decode("utf-8")
            except UnicodeDecodeError as exc:
                bad = start + exc.start
                raise _not_utf8(path, raw[bad], offset + bad, number) from None
            offset += len(raw)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: malformed JSON line (column {exc.colno}: {exc.msg}); "
                                 "each line must be one JSON object") from None
            if not isinstance(record, dict):
                raise InputError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
            yield number, record
