"""A document corpus (folder of Markdown/text files, or JSONL) and the QA file that asks about it.

Markdown files may start with YAML front matter (`module_code`, `name`, `ects`, ...): it becomes the
chunks' metadata, which the prompt shows above each chunk. Each file (JSONL: each `source`, else each
record) is one split unit. QA records name their document by path, file name or id; answerable ones
carry the answer as a verbatim span of the document.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import yaml

from dataset_builder.records import Document, InputError, Question, SkipLog, iter_jsonl, read_utf8
from dataset_builder.squad_reader import resolve_span, slug

TEXT_SUFFIXES = (".md", ".markdown", ".txt")
TITLE_KEYS = ("title",)          # front-matter keys used as the title (and not repeated as metadata)
SOURCE_KEYS = ("source",)
_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)
_H1_RE = re.compile(r"^#[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def _plain(value: Any) -> Any:
    """Metadata values as JSON-able scalars (YAML dates and the like become text)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return ", ".join(str(_plain(v)) for v in value)
    return str(value)


def split_front_matter(text: str, where: str) -> tuple[dict[str, Any], str]:
    match = _FRONT_MATTER_RE.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{where}: invalid YAML front matter: {exc}; fix the block between the `---` lines") from None
    if not isinstance(meta, dict):
        raise InputError(f"{where}: front matter must be a mapping (key: value lines), got {type(meta).__name__}")
    return {str(k): _plain(v) for k, v in meta.items()}, text[match.end():]


def document_from_file(path: Path, root: Path, origin: str) -> Document:
    rel = path.relative_to(root).as_posix()
    meta, body = split_front_matter(read_utf8(path), str(path))
    h1 = _H1_RE.search(body)
    title = next((str(meta.pop(k)) for k in TITLE_KEYS if meta.get(k)), None) or (h1.group(1) if h1 else path.stem)
    source = next((str(meta.pop(k)) for k in SOURCE_KEYS if meta.get(k)), None) or rel
    doc_id = rel.rsplit(".", 1)[0]
    return Document(doc_id=doc_id, text=body.strip("\n"), title=title, source=source, metadata=meta,
                    group=f"{origin}/{rel}", origin=origin, where=str(path))


def read_corpus(path: str | Path, origin: str, skips: SkipLog, doc_ids: set[str]) -> list[Document]:
    """A folder (recursively: .md/.markdown/.txt) or a .jsonl file -> documents, in a stable order."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: corpus not found (give a folder of .md/.txt files or a .jsonl file)")
    docs = _read_jsonl_corpus(path, origin, skips) if path.is_file() else _read_folder(path, origin, skips)
    out = []
    for doc in docs:
        if doc.doc_id in doc_ids:
            skips.skip("duplicate_document_id", doc.where, f"document id {doc.doc_id} is used twice",
                       "give every document a unique id / file name")
            continue
        if not doc.text.strip():
            skips.skip("empty_document", doc.where, "the document has no text")
            continue
        doc_ids.add(doc.doc_id)
        out.append(doc)
    return out


def _read_folder(root: Path, origin: str, skips: SkipLog) -> list[Document]:
    docs = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if path.name.startswith("."):
            continue
        if path.suffix.lower() not in TEXT_SUFFIXES:
            skips.skip("unsupported_file", str(path), f"{path.suffix or 'no suffix'} is not a text document",
                       f"convert it to Markdown or text ({', '.join(TEXT_SUFFIXES)})")
            continue
        docs.append(document_from_file(path, root, origin))
    if not docs:
        raise InputError(f"{root}: no .md/.markdown/.txt documents found")
    return docs


def _read_jsonl_corpus(path: Path, origin: str, skips: SkipLog) -> list[Document]:
    docs = []
    for number, record in iter_jsonl(path):
        where = f"{path}:{number}"
        doc_id = str(record.get("id") or "").strip()
        if not doc_id:
            skips.skip("missing_id", where, "corpus record without `id`", "add a unique `id` to every record")
            continue
        text = record.get("text")
        if not isinstance(text, str):
            skips.skip("empty_document", f"{where} (id {doc_id})", "record without a `text` string")
            continue
        meta = record.get("metadata") or {}
        if not isinstance(meta, dict):
            skips.skip("malformed_metadata", f"{where} (id {doc_id})", "`metadata` must be an object")
            continue
        source = str(record.get("source") or "")
        docs.append(Document(doc_id=doc_id, text=text, title=str(record.get("title") or doc_id),
                             source=source, metadata={str(k): _plain(v) for k, v in meta.items()},
                             group=f"{origin}/{source or doc_id}", origin=origin, where=f"{where} (id {doc_id})"))
    return docs


def document_index(docs: list[Document]) -> dict[str, Document]:
    """Every name a QA record may use for a document: id, relative path, file name, source."""
    index: dict[str, Document] = {}
    ambiguous: set[str] = set()
    for doc in docs:
        names = {doc.doc_id, doc.source, doc.source.rsplit("/", 1)[-1], doc.doc_id.rsplit("/", 1)[-1]}
        for name in filter(None, names):
            if name in index and index[name] is not doc:
                ambiguous.add(name)
            index.setdefault(name, doc)
    for name in ambiguous:
        del index[name]
    return index


def read_qa(path: str | Path, docs: list[Document], origin: str, skips: SkipLog, seen_ids: set[str]) -> list[Question]:
    """QA JSONL for a corpus: {id, question, answer (verbatim span, "" if unanswerable), document, answerable}."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: QA file not found (JSONL with id, question, answer, document, answerable)")
    index = document_index(docs)
    questions = []
    for number, record in iter_jsonl(path):
        where = f"{path}:{number}"
        qid = str(record.get("id") or "").strip()
        if not qid:
            qid = f"{slug(path.stem)}-{number}"
            skips.note("generated_id", where, f"no id; using {qid}")
        where = f"{where} (id {qid})"
        if qid in seen_ids:
            skips.skip("duplicate_id", where, f"id {qid} was already used by an earlier question",
                       "give every question a unique id")
            continue
        question = str(record.get("question") or "").strip()
        if not question:
            skips.skip("empty_question", where, "the question text is empty")
            continue
        answer = str(record.get("answer") or "").strip()
        answerable = record.get("answerable")
        answerable = bool(answer) if answerable is None else bool(answerable)
        name = str(record.get("document") or "").strip()
        doc = index.get(name) if name else None
        if name and doc is None:
            skips.skip("unknown_document", where, f"document {name!r} is not in the corpus",
                       "use the document's file name, relative path or id")
            continue
        if not answerable:
            group = doc.group if doc else f"{origin}/question/{qid}"
            questions.append(Question(qid, question, doc.doc_id if doc else None, "", None, False, origin, group, where))
            seen_ids.add(qid)
            continue
        if doc is None:
            skips.skip("missing_document", where, "an answerable question must name its `document`")
            continue
        if not answer:
            skips.skip("no_answer", where, "answerable question without `answer`",
                       "give the answer as a verbatim span of the document, or set answerable: false")
            continue
        offset = None
        if "answer_start" in record:
            offset = resolve_span(doc.text, answer, record.get("answer_start"), where, skips)
            if offset is None:
                continue
        elif answer not in doc.text:
            skips.skip("answer_not_in_document", where, f"answer {answer!r} does not occur in {doc.source}",
                       "make the answer a verbatim span of the document")
            continue
        questions.append(Question(qid, question, doc.doc_id, answer, offset, True, origin, doc.group, where))
        seen_ids.add(qid)
    return questions
