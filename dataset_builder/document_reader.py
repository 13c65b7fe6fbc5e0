"""A folder of your own documents (PDF, DOCX, HTML, Markdown/text) -> the builder's documents.

Why one Document per PDF page and per heading section: the chunker gives every chunk its document's
metadata, so a page number (`page`, shown to the model as "Seite: 3") or a section heading (`section`,
"Kapitel: ...") sticks to each chunk only when the document is that small. All pieces of one file share
its split unit (`group`), so the file stays in one split. Libraries: pypdf (text layer per page; chosen
over pdfplumber, which builds on pdfminer.six and is slower, for text only), python-docx (paragraphs with
heading styles, tables), trafilatura (main-text extraction of HTML without menus and footers, as Markdown
with headings; no model downloads). Markdown/text files go through the corpus reader's own function.

A file that cannot give text (encrypted, scanned without a text layer, empty, too large, malformed, an
unknown format) is skipped and counted by reason (`SkipLog`, reasons `document_<why>`), never raised.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from dataset_builder.build_config import DocumentsConfig
from dataset_builder.chunking import sections
from dataset_builder.corpus_reader import TEXT_SUFFIXES, document_from_file
from dataset_builder.records import Document, InputError, SkipLog

PDF_SUFFIXES = (".pdf",)
DOCX_SUFFIXES = (".docx",)
HTML_SUFFIXES = (".html", ".htm")
SUFFIXES = PDF_SUFFIXES + DOCX_SUFFIXES + HTML_SUFFIXES + TEXT_SUFFIXES
OLE_MAGIC = b"\xd0\xcf\x11\xe0"          # an encrypted DOCX (or an old .doc) is an OLE file, not a zip
_HEADING_STYLE_RE = re.compile(r"^(?:heading|überschrift)\s*(\d)$", re.IGNORECASE)
_EMPHASIS_RE = re.compile(r"(\*\*|__)(.+?)\1")


class Unreadable(Exception):
    """A file gives no usable text: `reason` (a SkipLog reason without the prefix) and the fix."""

    def __init__(self, reason: str, detail: str, fix: str = ""):
        super().__init__(detail)
        self.reason, self.detail, self.fix = reason, detail, fix


def read_documents(root: str | Path, origin: str, config: DocumentsConfig, skips: SkipLog,
                   doc_ids: set[str]) -> tuple[list[Document], dict]:
    """Every readable file under `root` (recursively, sorted) -> documents, plus the reading report
    (files seen/read/skipped by reason, per format, PDF pages) for stats.json."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: --documents needs a folder (of {', '.join(SUFFIXES)} files)")
    report = {"files": 0, "read": 0, "skipped": Counter(), "formats": Counter(), "pages": 0,
              "pages_without_text": 0, "documents": 0}
    docs: list[Document] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        report["files"] += 1
        try:
            pieces = _read_file(path, root, origin, config, report)
        except Unreadable as why:
            report["skipped"][why.reason] += 1
            skips.skip(f"document_{why.reason}", str(path), why.detail, why.fix)
            continue
        pieces = [d for d in pieces if d.doc_id not in doc_ids]
        doc_ids.update(d.doc_id for d in pieces)
        docs += pieces
        report["read"] += 1
        report["formats"][path.suffix.lower().lstrip(".")] += 1
    report["documents"] = len(docs)
    report["skipped"] = dict(sorted(report["skipped"].items()))
    report["formats"] = dict(sorted(report["formats"].items()))
    return docs, report


def _read_file(path: Path, root: Path, origin: str, config: DocumentsConfig, report: dict) -> list[Document]:
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise Unreadable("unsupported", f"{suffix or 'no suffix'} is not a supported document format",
                         f"convert it to one of {', '.join(SUFFIXES)}")
    size = path.stat().st_size
    if size == 0:
        raise Unreadable("empty", "the file is empty")
    if size > config.max_file_mb * 1024 * 1024:
        raise Unreadable("too_large", f"{size / 2 ** 20:.2f} MB is over documents.max_file_mb={config.max_file_mb}",
                         "split the file or raise --documents.max_file_mb")
    rel = path.relative_to(root).as_posix()
    base = Document(doc_id=rel, text="", title=path.stem, source=rel, metadata={}, group=f"{origin}/{rel}",
                    origin=origin, where=str(path))
    try:
        if suffix in PDF_SUFFIXES:
            docs = _pdf_pages(path, base, config, report)
        else:
            if suffix in DOCX_SUFFIXES:
                base.title, base.text = _docx_markdown(path)
            elif suffix in HTML_SUFFIXES:
                base.title, base.text = _html_markdown(path)
            else:
                doc = document_from_file(path, root, origin)
                base.title, base.text, base.metadata = doc.title, doc.text, doc.metadata
            base.title = base.title or path.stem
            docs = _section_documents(base)
    except Unreadable:
        raise
    except InputError as exc:             # the corpus reader's message (not UTF-8, bad front matter)
        raise Unreadable("malformed", str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - any library failure on a broken file is a skip, not a crash
        raise Unreadable("malformed", f"cannot parse it ({type(exc).__name__}: {exc})",
                         "re-export the file from its application") from None
    if not docs:
        raise Unreadable("no_text", "no text found in the file")
    return docs


def _pdf_pages(path: Path, base: Document, config: DocumentsConfig, report: dict) -> list[Document]:
    """One document per page with text; a PDF none of whose pages has text is a scan (no text layer)."""
    from pypdf import PdfReader

    reader = PdfReader(path)
    if reader.is_encrypted:
        try:
            opened = reader.decrypt("")       # many PDFs only have an owner password and open without one
        except Exception as exc:  # noqa: BLE001 - e.g. AES without the `cryptography` package
            raise Unreadable("encrypted", f"encrypted PDF ({type(exc).__name__}: {exc})",
                             "save an unencrypted copy") from None
        if not opened:
            raise Unreadable("encrypted", "the PDF is password-protected", "save an unencrypted copy")
    title = (reader.metadata.title if reader.metadata and reader.metadata.title else "") or base.title
    docs, empty = [], 0
    for number, page in enumerate(reader.pages, start=1):
        text = _unwrap(page.extract_text() or "")
        if len(text) < config.min_page_chars:
            empty += 1
            continue
        docs.append(Document(doc_id=f"{base.doc_id}/p{number}", text=text, title=str(title), source=base.source,
                             metadata={"page": number}, group=base.group, origin=base.origin,
                             where=f"{base.where} page {number}"))
    if not reader.pages:
        raise Unreadable("malformed", "the PDF has no pages", "re-export the file from its application")
    if not docs:
        raise Unreadable("no_text_layer", f"none of its {len(reader.pages)} page(s) has a text layer (a scan?)",
                         "run OCR first (e.g. `ocrmypdf in.pdf out.pdf`)")
    report["pages"] += len(reader.pages)
    report["pages_without_text"] += empty
    return docs


def _unwrap(text: str) -> str:
    """PDF lines -> paragraphs: hyphenated line ends joined, single line breaks become spaces, blank
    lines stay paragraph breaks (the chunker and the extractive writer work on lines and paragraphs)."""
    text = re.sub(r"(\w)-\n(?=[a-zäöüß])", r"\1", text.replace("\r", ""))
    paragraphs = re.split(r"\n[ \t]*\n+", text)
    return "\n\n".join(" ".join(p.split()) for p in paragraphs if p.strip())


def _docx_markdown(path: Path) -> tuple[str, str]:
    """(title, Markdown text): heading styles become `#` lines, table rows `a | b` lines, in body order."""
    if path.read_bytes()[:4] == OLE_MAGIC:
        raise Unreadable("encrypted", "the DOCX is password-protected (or an old binary .doc)",
                         "save an unencrypted .docx copy")
    import docx
    from docx.table import Table
    from docx.text.paragraph import Paragraph

    document = docx.Document(str(path))
    title = document.core_properties.title or ""
    lines: list[str] = []
    for element in document.element.body.iterchildren():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "p":
            para = Paragraph(element, document)
            text = " ".join(para.text.split())
            if not text:
                continue
            style = para.style.name if para.style is not None else ""
            level = _HEADING_STYLE_RE.match(style)
            if style == "Title":
                title = title or text
                lines.append(f"# {text}")
            elif level:
                lines.append("#" * min(6, int(level.group(1))) + f" {text}")
            else:
                lines.append(text)
        elif tag == "tbl":
            for row in Table(element, document).rows:
                cells = [" ".join(c.text.split()) for c in row.cells]
                if any(cells):
                    lines.append(" | ".join(cells))
    return title, "\n\n".join(lines)


def _html_markdown(path: Path) -> tuple[str, str]:
    """(title, Markdown text) of the page's main content (trafilatura: no menus, footers, scripts)."""
    import trafilatura

    html = path.read_bytes()
    text = trafilatura.extract(html, output_format="markdown", include_tables=True, favor_recall=True) or ""
    meta = trafilatura.extract_metadata(html) if text else None
    return (meta.title if meta and meta.title else ""), _EMPHASIS_RE.sub(r"\2", text)


def _section_documents(doc: Document) -> list[Document]:
    """One document per heading section (the heading line kept on top), `section` in its metadata."""
    out = []
    for n, (heading, start, end) in enumerate(sections(doc.text)):
        body = doc.text[start:end].strip("\n")
        if not body.strip():
            continue
        name = heading.lstrip("#").strip()
        meta = {**doc.metadata, **({"section": name} if name else {})}
        out.append(Document(doc_id=f"{doc.doc_id}/s{n}", text=f"{heading}\n{body}" if heading else body,
                            title=doc.title, source=doc.source, metadata=meta, group=doc.group,
                            origin=doc.origin, where=f"{doc.where} section {n}" + (f" ({name})" if name else "")))
    return out
