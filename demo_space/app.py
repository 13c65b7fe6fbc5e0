"""The demo Space: ask a German question, see the retrieved chunks, get a streamed, cited answer.

Configured by environment (see `demo_space.settings`); on a Space this file is started through the
repo's root `app.py`. The model and the corpus index load once, at start-up; every request reuses them.
`build_app` takes them ready-made so tests can inject a tiny model.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

from dataset_builder.contract import REFUSAL, parse_answer, render_prompt_text
from answering.answer import forced_lead
from demo_space.documents import UploadError, document_chunks
from demo_space.generation import Generator, Sampling
from demo_space.render import final_answer_markdown, sources_html, streaming_markdown
from demo_space.retrieval import ChunkIndex, load_corpus
from demo_space.settings import DemoConfig

log = logging.getLogger("demo_space")

EXAMPLES = [
    "Wie viele ECTS-Punkte bringt das Modul Grundlagen der Programmierung mit Python?",
    "Wer ist für das Modul Lineare Algebra verantwortlich?",
    "Wie wird im Modul Einführung in die Data Science geprüft?",
    "Wie viele Stunden Selbststudium umfasst DS-101?",
    "Wie hoch ist die Semestergebühr an der Hochschule?",
]
INTRO = (
    "# Modulkatalog-Assistent\n"
    "Stelle eine Frage auf Deutsch. Die Antwort stützt sich nur auf die gefundenen Abschnitte, nennt ihre "
    "Quelle als **[n]** – oder sagt, dass die Abschnitte keine Antwort enthalten."
)


class DemoService:
    """The request handlers, independent of the page layout (one instance per app)."""

    def __init__(self, config: DemoConfig, generator: Generator, index: ChunkIndex | None,
                 corpus_note: str = "", decision=None, encoder=None, retrieval_note: str = ""):
        self.config = config
        self.generator = generator
        self.index = index
        self.corpus_note = corpus_note
        self.encoder = encoder              # dense half of hybrid retrieval; None: BM25 only
        self.retrieval_note = retrieval_note
        self.decision = decision   # the adapter's tuned threshold (DecisionThreshold), None: free generation

    # -- uploads -----------------------------------------------------------------------------------
    def upload(self, files) -> tuple[ChunkIndex | None, str]:
        """Uploaded files -> a per-session index and a status line; bad files are named, never fatal."""
        paths = [Path(getattr(f, "name", f)) for f in (files or []) if f]
        if not paths:
            return None, self._corpus_status()
        chunks, loaded, errors = [], [], []
        for path in paths:
            try:
                found = document_chunks(path, self.config.chunk_max_tokens,
                                        int(self.config.max_upload_mb * 1e6), display_name=_display_name(path))
                chunks += found
                loaded.append(f"„{_display_name(path)}“ ({len(found)} Abschnitte)")
            except UploadError as exc:
                errors.append(f"⚠️ {exc}")
            except Exception as exc:  # a parser bug must not take the app down
                log.exception("upload of %s failed", path)
                errors.append(f"⚠️ „{_display_name(path)}“ konnte nicht gelesen werden ({type(exc).__name__}).")
        lines = []
        if loaded:
            lines.append("✔ Gesucht wird jetzt in deinen Dokumenten: " + ", ".join(loaded) + ".")
        else:
            lines.append("Keine Datei konnte verwendet werden; gesucht wird weiter im " + self._corpus_name() + ".")
        index = ChunkIndex(chunks, self.encoder, self.config.embedding_cache) if chunks else None
        return index, "\n\n".join(lines + errors)

    def _corpus_name(self) -> str:
        return f"Datensatz {self.config.dataset}" if self.index is not None else "(keinem) Datensatz"

    def _corpus_status(self) -> str:
        if self.index is None:
            return "ℹ️ Kein Datensatz geladen" + (f" ({self.corpus_note})" if self.corpus_note else "") + \
                ". Lade Dokumente hoch (Markdown, Text oder PDF)."
        return (f"ℹ️ Gesucht wird in {len(self.index)} Abschnitten aus dem Datensatz {self.config.dataset}."
                + (f" ({self.retrieval_note})" if self.retrieval_note else ""))

    # -- questions ---------------------------------------------------------------------------------
    def ask(self, question: str, upload_index: ChunkIndex | None, compare: bool, max_new_tokens: float,
            temperature: float, top_p: float, top_k: float) -> Iterator[tuple[str, str, str, str]]:
        """Yield (notice, answer, base answer, sources) as the answer streams in."""
        question = (question or "").strip()
        if not question:
            yield "⚠️ Bitte gib eine Frage ein.", "", "", ""
            return
        notice = ""
        limit = self.config.max_question_chars
        if len(question) > limit:
            notice = (f"✂️ Deine Frage war {len(question):,} Zeichen lang und wurde auf die ersten "
                      f"{limit:,} Zeichen gekürzt.").replace(",", ".")
            question = question[:limit]
        index = upload_index if upload_index is not None else self.index
        if index is None:
            yield "⚠️ Es sind keine Dokumente geladen. Bitte lade zuerst Dokumente hoch.", "", "", ""
            return
        hits = index.search(question, max(1, int(top_k)))
        if not hits:
            notice = (notice + "\n\n" if notice else "") + "ℹ️ Kein Abschnitt passt zur Frage; das Modell " \
                "sollte daher die Antwort verweigern."
        chunks = [h.chunk for h in hits]
        sources = sources_html(hits)
        sampling = Sampling(max_new_tokens=int(max_new_tokens), temperature=float(temperature), top_p=float(top_p))
        prompt = render_prompt_text(self.generator.tokenizer, question, chunks)
        yield notice, streaming_markdown(""), "", sources

        answer = ""
        try:
            lead = ""
            if self.decision is not None and self.decision.answer_mode != "free":
                # the adapter's own probabilities decide first (settings.decide), then the shipped answer mode
                # writes: the model after the forced lead, or the cited chunk's sentence (answering.answer)
                # (the fused reading takes the chunks' BM25 scores, also under hybrid retrieval)
                number = self.generator.decide(question, chunks, self.decision, [h.bm25 for h in hits])
                if number is None:
                    answer = REFUSAL
                else:
                    if self.decision.answer_mode == "extracted":
                        answer = self.generator.decided_answer(question, chunks, number) or ""
                    lead = "" if answer else forced_lead(number, chunks[number - 1])
                if answer:
                    yield notice, streaming_markdown(answer), "", sources
            if not answer:
                for text in self.generator.stream(prompt + lead, sampling, use_adapter=True):
                    answer = f"{lead} {text.lstrip()}" if lead else text
                    yield notice, streaming_markdown(answer), "", sources
        except Exception as exc:
            log.exception("generation failed")
            yield f"⚠️ Bei der Antwort ist ein Fehler aufgetreten ({type(exc).__name__}). Bitte erneut versuchen.", \
                "", "", sources
            return
        parsed = parse_answer(answer, chunks)
        final = final_answer_markdown(answer, parsed, hits)
        sources = sources_html(hits, parsed.cited)
        yield notice, final, "", sources

        if not compare:
            return
        if not self.generator.has_adapter:
            yield notice, final, "ℹ️ Kein Adapter geladen: die Antwort oben stammt bereits vom Basismodell.", sources
            return
        base = ""
        try:
            for base in self.generator.stream(prompt, sampling, use_adapter=False):
                yield notice, final, streaming_markdown(base), sources
        except Exception as exc:
            log.exception("base generation failed")
            yield notice, final, f"⚠️ Fehler beim Basismodell ({type(exc).__name__}).", sources
            return
        yield notice, final, final_answer_markdown(base, parse_answer(base, chunks), hits), sources


def _display_name(path: Path) -> str:
    return path.name


# How the demo writes its answers (the adapter's shipped answer mode; none shipped: free generation).
ANSWER_MODE_NOTE = {
    "generated": "Antwortmodus: entschieden, vom Modell formuliert (nach der erzwungenen Quellenangabe)",
    "extracted": "Antwortmodus: entschieden, Satz aus dem zitierten Abschnitt",
    "free": "Antwortmodus: freie Generierung",
}


def build_app(config: DemoConfig, model=None, tokenizer=None, index: ChunkIndex | None = None):
    """The Gradio Blocks app; loads the model (and the corpus index) unless they are given."""
    import gradio as gr

    if model is None or tokenizer is None:
        from demo_space.generation import load_model

        model, tokenizer = load_model(config)
    from demo_space.dense import load_encoder

    encoder, retrieval_note = load_encoder(config.dense_model, config.dense_prefixes)
    corpus_note = ""
    if index is None and config.dataset:
        try:
            index = ChunkIndex(load_corpus(config.dataset, config.dataset_revision), encoder, config.embedding_cache)
        except Exception as exc:  # the app still serves uploads
            log.warning("could not load dataset %s: %s", config.dataset, exc)
            corpus_note = f"{config.dataset} nicht ladbar: {type(exc).__name__}"
    decision = None
    if config.decide == "auto" and config.adapter:
        from answering.decision import load_threshold

        try:
            decision = load_threshold(config.adapter, config.adapter_revision)
        except Exception as exc:  # an unreadable file means free generation, said in the log
            log.warning("no decision threshold from %s: %s", config.adapter, exc)
    service = DemoService(config, Generator(model, tokenizer, config), index, corpus_note, decision, encoder,
                          retrieval_note)
    adapter_line = f"Adapter `{config.adapter}`" if config.adapter else "ohne Adapter"
    adapter_line += f" · {ANSWER_MODE_NOTE[decision.answer_mode if decision is not None else 'free']}"
    adapter_line += f" · Suche: {retrieval_note}"
    with gr.Blocks(title="spaces-rag-de · Modulkatalog-Assistent") as app:
        gr.Markdown(INTRO + f"\n\n<small>Basismodell `{config.base_model}` (4-bit {config.quantization.upper()}"
                    f") · {adapter_line}</small>")
        upload_index = gr.State(None)
        with gr.Row():
            with gr.Column(scale=3):
                question = gr.Textbox(label="Frage", placeholder="z. B. Wie viele ECTS hat DS-101?", lines=2,
                                      elem_id="question")
                with gr.Row():
                    ask_btn = gr.Button("Fragen", variant="primary", elem_id="ask-btn")
                    compare = gr.Checkbox(label="Mit Basismodell (ohne Adapter) vergleichen", value=False,
                                          elem_id="compare")
                notice = gr.Markdown(elem_id="notice")
                answer = gr.Markdown(label="Antwort", elem_id="answer", min_height=60)
                base_answer = gr.Markdown(label="Basismodell", elem_id="base-answer")
                gr.Examples(EXAMPLES, inputs=[question], label="Beispielfragen")
            with gr.Column(scale=2):
                files = gr.File(label="Eigene Dokumente (Markdown, Text, PDF)", file_count="multiple",
                                type="filepath", elem_id="upload")
                upload_status = gr.Markdown(service._corpus_status(), elem_id="upload-status")
                with gr.Accordion("Generierungseinstellungen", open=False):
                    max_new = gr.Slider(8, 512, value=config.max_new_tokens, step=8, label="Max. neue Tokens")
                    temperature = gr.Slider(0.0, 1.5, value=config.temperature, step=0.05,
                                            label="Temperatur (0 = greedy)")
                    top_p = gr.Slider(0.1, 1.0, value=config.top_p, step=0.05, label="Top-p")
                    top_k = gr.Slider(1, 8, value=config.top_k, step=1, label="Abschnitte (Top-k)")
                gr.Markdown("### Gefundene Abschnitte")
                sources = gr.HTML(elem_id="sources")

        files.change(service.upload, inputs=[files], outputs=[upload_index, upload_status],
                     api_name="upload_documents", concurrency_limit=None)
        inputs = [question, upload_index, compare, max_new, temperature, top_p, top_k]
        outputs = [notice, answer, base_answer, sources]
        ask_btn.click(service.ask, inputs=inputs, outputs=outputs, api_name="ask")
        question.submit(service.ask, inputs=inputs, outputs=outputs, api_name=False)
    app.queue(default_concurrency_limit=config.concurrency_limit)
    app.rag_service = service  # for tests and scripts
    return app


def main(config: DemoConfig | None = None, host: str | None = None, port: int | None = None,
         share: bool = False) -> int:
    """Load once, then serve (blocks). On a Space, Gradio's own host/port environment applies."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = config or DemoConfig.from_env()
    app = build_app(config)
    kwargs = {"share": share}
    if host:
        kwargs["server_name"] = host
    if port:
        kwargs["server_port"] = port
    app.launch(**kwargs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
