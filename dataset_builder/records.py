"""What the readers produce (documents and questions) and how bad input is reported.

Bad input never disappears silently: a file that cannot be read at all raises `InputError` (naming the
file, the position and the fix); a bad record inside a readable file is either raised (strict mode) or
skipped and counted by reason in `SkipLog`, which ends up in stats.json with the file and record named.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLES_PER_REASON = 20   # records listed per skip reason in stats.json (all are counted)


class InputError(ValueError):
    """An input cannot be used; the message names the file, the record and the fix."""


@dataclass
class Document:
    doc_id: str        # unique across all inputs; chunk ids are `<doc_id>#<n>`
    text: str
    title: str
    source: str        # shown to the model as "Quelle"
    metadata: dict[str, Any]
    group: str         # the split unit (`source_doc` column): a SQuAD article, a corpus file
    origin: str        # e.g. "xquad-de", "sample-modules"
    where: str         # file (and record) for messages


@dataclass
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


def read_utf8(path: Path) -> str:
    """File text as UTF-8, or an InputError with the byte offset and line of the first bad byte."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            f"{path}: not UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}, line {line}); "
            f"convert the file, e.g. `iconv -f latin1 -t utf-8 {path.name} > fixed.{path.suffix.lstrip('.')}`"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text


def load_json(path: Path) -> Any:
    text = read_utf8(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
                         "fix the file (e.g. check it with `python -m json.tool`)") from None


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """(line number, record) per non-empty line; a malformed line raises an InputError naming it."""
    out = []
    for number, line in enumerate(read_utf8(path).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{number}: malformed JSON line (column {exc.colno}: {exc.msg}); "
                             "each line must be one JSON object") from None
        if not isinstance(record, dict):
            raise InputError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        out.append((number, record))
    return out
