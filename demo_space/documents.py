"""Uploaded documents (Markdown, text, PDF) -> chunks, with a friendly German message for bad files.

Markdown may start with YAML front matter (as the sample module catalog does); its fields become the
chunks' metadata (module code, ECTS ...), the first `# ` heading the title.
"""

from __future__ import annotations

import re
from pathlib import Path

from dataset_builder.contract import Chunk

SUPPORTED_SUFFIXES = (".md", ".markdown", ".txt", ".pdf")
FRONT_MATTER_RE = re.compile(r"\A---\s*\n(.*?)\n---\s*\n", re.S)
HEADING_RE = re.compile(r"^#\s+(.+?)\s*$", re.M)


class UploadError(ValueError):
    """A file the demo cannot use; the message is German and shown in the page as it is."""


def read_text(path: Path, max_bytes: int) -> str:
    """The document's text; PDF via pypdf. Raises UploadError naming the file and what to do."""
    name = path.name
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UploadError(f"„{name}“: Dateityp {suffix or '(ohne Endung)'} wird nicht unterstützt. "
                          f"Bitte lade Markdown (.md), Text (.txt) oder PDF (.pdf) hoch.")
    size = path.stat().st_size
    if size > max_bytes:
        raise UploadError(f"„{name}“ ist {size / 1e6:.1f} MB groß; erlaubt sind höchstens "
                          f"{max_bytes / 1e6:.0f} MB pro Datei.")
    if suffix == ".pdf":
        return _pdf_text(path)
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise UploadError(f"„{name}“ ist keine Textdatei (Binärdaten gefunden). Bitte als UTF-8-Text speichern.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UploadError(f"„{name}“ ist nicht UTF-8-kodiert. Bitte die Datei als UTF-8 speichern und erneut "
                          "hochladen.") from None


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise UploadError(f"„{path.name}“ ist verschlüsselt. Bitte eine PDF ohne Passwortschutz hochladen.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UploadError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, OSError) as exc:
        raise UploadError(f"„{path.name}“ ist keine lesbare PDF-Datei ({type(exc).__name__}). Bitte die Datei "
                          "prüfen oder als Text hochladen.") from None
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise UploadError(f"„{path.name}“ enthält keinen auslesbaren Text (vielleicht nur gescannte Bilder). "
                          "Bitte eine PDF mit Textebene hochladen.")
    return text


def split_front_matter(text: str) -> tuple[dict, str]:
    """(front matter fields, body); no or broken front matter -> ({}, text)."""
    match = FRONT_MATTER_RE.match(text)
    if not match:
        return {}, text
    import yaml

    try:
        meta = yaml.safe_load(match.group(1)) or {}
    except yaml.YAMLError:
        return {}, text
    if not isinstance(meta, dict):
        return {}, text
    return {str(k): v for k, v in meta.items()}, text[match.end():]


def document_chunks(path: Path, max_tokens: int, max_bytes: int, display_name: str | None = None) -> list[Chunk]:
    """One uploaded file -> chunks (ids `<file>#<n>` from the shared chunker)."""
    from dataset_builder.chunking import chunk_document

    path = Path(path)
    name = display_name or path.name
    text = read_text(path, max_bytes)
    meta, body = split_front_matter(text) if path.suffix.lower() in (".md", ".markdown") else ({}, text)
    if not body.strip():
        raise UploadError(f"„{name}“ ist leer. Bitte eine Datei mit Text hochladen.")
    heading = HEADING_RE.search(body)
    title = str(meta.pop("title", "") or meta.get("name") or (heading.group(1) if heading else Path(name).stem))
    chunks = chunk_document(body, doc_id=Path(name).stem, title=title, source=name, metadata=meta,
                            max_tokens=max_tokens)
    if not chunks:
        raise UploadError(f"„{name}“ enthält keinen verwertbaren Text.")
    return chunks
