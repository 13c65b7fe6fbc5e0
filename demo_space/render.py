"""HTML/Markdown for the page: retrieved chunks with metadata (the cited one highlighted), answers.

Inline styles only: Gradio 6 takes page CSS at `launch()`, and the Space, `rag-de demo` and the tests
launch differently; inline styles look the same everywhere.
"""

from __future__ import annotations

import html
from typing import Sequence

from dataset_builder.contract import METADATA_LABELS, ParsedAnswer
from demo_space.retrieval import Hit

CARD_STYLE = "border:1px solid #d0d7de;border-radius:8px;padding:8px 12px;margin:6px 0;"
CITED_STYLE = "border:2px solid #1a7f37;background:#dafbe1;border-radius:8px;padding:8px 12px;margin:6px 0;"
SNIPPET_CHARS = 600


def sources_html(hits: Sequence[Hit], cited: Sequence[int] = ()) -> str:
    """The retrieved chunks as numbered cards (numbers = `[n]` in the prompt); cited ones highlighted."""
    if not hits:
        return "<p><em>Keine passenden Abschnitte gefunden.</em></p>"
    cards = []
    for number, hit in enumerate(hits, start=1):
        chunk = hit.chunk
        is_cited = number in cited
        meta = [f"<b>{html.escape(METADATA_LABELS['source'])}:</b> {html.escape(chunk.source)}"] if chunk.source else []
        for key, value in chunk.metadata.items():
            if value not in (None, ""):
                label = METADATA_LABELS.get(key, key)
                meta.append(f"<b>{html.escape(str(label))}:</b> {html.escape(str(value))}")
        text = chunk.text.strip()
        if len(text) > SNIPPET_CHARS:
            text = text[:SNIPPET_CHARS].rstrip() + " …"
        badge = " <span style='color:#1a7f37;font-weight:600'>✔ zitiert</span>" if is_cited else ""
        cards.append(
            f"<div class='rag-source{' rag-cited' if is_cited else ''}' data-chunk-id='{html.escape(chunk.id)}' "
            f"style='{CITED_STYLE if is_cited else CARD_STYLE}'>"
            f"<div><b>[{number}] {html.escape(chunk.title or chunk.id)}</b>{badge} "
            f"<small style='color:#57606a'>{hit.method} {hit.score:.{2 if hit.method == 'BM25' else 3}f}</small></div>"
            f"<div style='font-size:0.85em;color:#57606a'>{' · '.join(meta)}</div>"
            f"<div style='margin-top:4px;white-space:pre-wrap'>{html.escape(text)}</div></div>"
        )
    return "\n".join(cards)


def final_answer_markdown(raw: str, parsed: ParsedAnswer, hits: Sequence[Hit]) -> str:
    """The finished answer: a refusal marked as such, else the text plus the cited source(s)."""
    if parsed.is_refusal:
        return f"✖ **Keine Antwort in den Quellen** – das Modell verweigert die Antwort:\n\n> {plain(raw)}"
    lines = [plain(raw) or "_(leere Antwort)_"]
    valid = [n for n in parsed.cited if 1 <= n <= len(hits)]
    wrong = [n for n in parsed.cited if n not in valid]
    for n in valid:
        chunk = hits[n - 1].chunk
        source = f" ({chunk.source})" if chunk.source else ""
        lines.append(f"**Quelle [{n}]:** {chunk.title or chunk.id}{source}")
    if wrong:
        lines.append(f"⚠️ Zitiert nicht vorhandene Abschnitte: {', '.join(f'[{n}]' for n in wrong)}")
    if not parsed.cited:
        lines.append("⚠️ Die Antwort nennt keine Quelle.")
    return "\n\n".join(lines)


def plain(text: str) -> str:
    """Model text as a Markdown paragraph: indentation would turn it into a code block."""
    return "\n".join(line.strip() for line in (text or "").strip().splitlines())


def streaming_markdown(partial: str) -> str:
    return plain(partial) + " ▌"
