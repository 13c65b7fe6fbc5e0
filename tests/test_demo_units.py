"""Demo parts without a server: settings from env, uploads, retrieval, both decode paths, the ask flow."""

from __future__ import annotations

import pytest

from helpers import build_catalog_tokenizer, build_tiny_model, catalog_chunks


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_catalog_tokenizer()
    return build_tiny_model(tokenizer), tokenizer


def test_settings_from_env_typed_and_overridable():
    from demo_space.settings import DemoConfig
    from rag_de.config import ConfigError

    env = {"RAG_DE_ADAPTER": "org/a", "RAG_DE_TOP_K": "5", "RAG_DE_TEMPERATURE": "0.3", "RAG_DE_DATASET": ""}
    s = DemoConfig.from_env(env, max_new_tokens=32)
    assert (s.adapter, s.top_k, s.temperature, s.max_new_tokens) == ("org/a", 5, 0.3, 32)
    assert s.dataset == "org/spaces-rag-de"  # empty variable = unset = default
    assert s.base_model == "HuggingFaceTB/SmolLM2-135M-Instruct"
    with pytest.raises(ConfigError, match="RAG_DE|top_k"):
        DemoConfig.from_env({"RAG_DE_TOP_K": "drei"})
    with pytest.raises(ConfigError, match="fast_generation"):
        DemoConfig.from_env({"RAG_DE_FAST_GENERATION": "maybe"})
    assert s.env()["RAG_DE_ADAPTER"] == "org/a" and "HF_TOKEN" not in s.env()


def test_catalog_upload_chunks_carry_front_matter_metadata():
    chunks = catalog_chunks()
    first = [c for c in chunks if c.id.startswith("DS-101#")]
    assert first and first[0].metadata["module_code"] == "DS-101" and first[0].metadata["ects"] == 10
    assert first[0].title == "Grundlagen der Programmierung mit Python"
    assert first[0].source == "DS-101.md"


@pytest.mark.parametrize("name,content,message", [
    ("tabelle.xlsx", b"PK\x03\x04", "wird nicht unterstützt"),
    ("kaputt.pdf", b"%PDF-1.4 this is not really a pdf", "keine lesbare PDF"),
    ("latin1.txt", "Prüfung".encode("latin-1"), "nicht UTF-8"),
    ("leer.md", b"---\ntitle: x\n---\n   \n", "leer"),
])
def test_bad_uploads_raise_friendly_german_errors(tmp_path, name, content, message):
    from demo_space.documents import UploadError, document_chunks

    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(UploadError, match=message) as info:
        document_chunks(path, max_tokens=100, max_bytes=10**6)
    assert name in str(info.value)


def test_pdf_upload_is_read(tmp_path):
    """A real PDF with a text layer (written by hand: pypdf only edits, it does not lay out text)."""
    from demo_space.documents import document_chunks

    path = tmp_path / "ordnung.pdf"
    path.write_bytes(_minimal_pdf("Die Bachelorarbeit umfasst 12 ECTS."))
    chunks = document_chunks(path, max_tokens=100, max_bytes=10**6)
    assert "Bachelorarbeit umfasst 12 ECTS" in chunks[0].text and chunks[0].source == "ordnung.pdf"


def _minimal_pdf(text: str) -> bytes:
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out, offsets = b"%PDF-1.4\n", []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out


def test_retrieval_finds_the_module_by_code_and_topic():
    from demo_space.retrieval import ChunkIndex, unique_chunks

    chunks = catalog_chunks()
    index = ChunkIndex(chunks)
    hits = index.search("Wer ist für Lineare Algebra verantwortlich?", 3)
    assert hits[0].chunk.metadata["module_code"] == "DS-103"
    # the dataset's contexts column holds each chunk many times; the corpus keeps one of each
    records = [[c.to_record() for c in chunks[:3]], [c.to_record() for c in chunks[1:4]]]
    assert [c.id for c in unique_chunks(records)] == [c.id for c in chunks[:4]]


def test_fast_path_matches_plain_generate_greedy(tiny):
    """The static-cache decode loop (the CUDA fast path, uncompiled here) gives generate's greedy ids."""
    from dataset_builder.contract import render_prompt_text
    from demo_space.generation import Generator
    from demo_space.settings import DemoConfig

    model, tokenizer = tiny
    gen = Generator(model, tokenizer, DemoConfig(fast_generation="on"))
    assert gen.fast and not gen.compile  # CPU: static cache, no torch.compile
    prompt = render_prompt_text(tokenizer, "Wie viele ECTS hat DS-101?", catalog_chunks()[:2])
    plain = gen.greedy_ids(prompt, 24, fast=False)
    fast = gen.greedy_ids(prompt, 24, fast=True)
    assert len(plain) == 24 and fast == plain
    # One static cache serves every request: a shorter prompt in between, then the first again.
    other = render_prompt_text(tokenizer, "Wer prüft?", catalog_chunks()[2:3])
    assert gen.greedy_ids(other, 8, fast=True) == gen.greedy_ids(other, 8, fast=False)
    assert gen.greedy_ids(prompt, 24, fast=True) == plain


def test_fast_path_falls_back_to_plain_when_the_static_cache_is_too_short(tiny):
    from dataset_builder.contract import render_prompt_text
    from demo_space.generation import Generator, Sampling
    from demo_space.settings import DemoConfig

    model, tokenizer = tiny
    gen = Generator(model, tokenizer, DemoConfig(fast_generation="on", static_cache_tokens=64))
    prompt = render_prompt_text(tokenizer, "Wie viele ECTS hat DS-101?", catalog_chunks()[:2])
    assert gen.encode(prompt).shape[1] > 64
    updates = list(gen.stream(prompt, Sampling(max_new_tokens=6)))
    assert updates and updates[-1] == tokenizer.decode(gen.greedy_ids(prompt, 6, fast=False), skip_special_tokens=True)


def test_stream_yields_growing_text_and_adapter_switch_changes_output(tiny, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model

    from dataset_builder.contract import render_prompt_text
    from demo_space.generation import Generator, Sampling
    from demo_space.settings import DemoConfig

    model, tokenizer = tiny
    torch.manual_seed(3)
    peft_model = get_peft_model(build_tiny_model(tokenizer), LoraConfig(
        r=4, lora_alpha=64, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    prompt = render_prompt_text(tokenizer, "Wie viele ECTS hat DS-101?", catalog_chunks()[:2])
    for fast in ("off", "on"):
        gen = Generator(peft_model, tokenizer, DemoConfig(fast_generation=fast))
        updates = list(gen.stream(prompt, Sampling(max_new_tokens=12)))
        assert len(updates) >= 6 and all(b.startswith(a) for a, b in zip(updates, updates[1:]))  # per token
        with_adapter = gen.greedy_ids(prompt, 12)
        without = gen.greedy_ids(prompt, 12, use_adapter=False)
        assert with_adapter != without
        assert gen.greedy_ids(prompt, 12) == with_adapter  # disable_adapter left no trace


def test_ask_flow_bad_inputs_and_citation(tiny):
    from demo_space.app import DemoService
    from demo_space.generation import Generator
    from demo_space.retrieval import ChunkIndex
    from demo_space.settings import DemoConfig

    model, tokenizer = tiny
    config = DemoConfig(max_question_chars=300)
    service = DemoService(config, Generator(model, tokenizer, config), ChunkIndex(catalog_chunks()))
    empty = list(service.ask("   ", None, False, 8, 0.0, 0.9, 2))
    assert empty == [("⚠️ Bitte gib eine Frage ein.", "", "", "")]
    long = list(service.ask("Wie viele ECTS hat DS-101? " + "x" * 20_000, None, False, 8, 0.0, 0.9, 2))
    assert "20.027 Zeichen" in long[-1][0] and "300 Zeichen gekürzt" in long[-1][0]
    assert "DS-101" in long[-1][3] and long[-1][1]


def test_ask_decides_with_the_adapters_threshold(tiny):
    """With a shipped threshold the model's own probabilities decide: below it the answer is the decided
    pipeline's (the cited chunk's sentence sharing the most question words, as `rag-de evaluate` scores it),
    citing n among the shown chunks; above it the refusal, without generating."""
    from dataset_builder.contract import REFUSAL, parse_answer
    from answering.decision import DecisionThreshold
    from demo_space.app import DemoService
    from demo_space.generation import Generator
    from demo_space.retrieval import ChunkIndex
    from demo_space.settings import DemoConfig

    model, tokenizer = tiny
    config = DemoConfig()
    index = ChunkIndex(catalog_chunks())
    from answering.decision import Fusion

    for mode in ("lead", "evidence", "fused"):   # fused: the retrieval's BM25 scores go into the decision
        fusion = Fusion(0.5, [0.0, -1.0], [1.0, 1.0]) if mode == "fused" else None
        answer_all = DecisionThreshold(refusal_threshold=float("inf"), tuned_on="test", mode=mode, fusion=fusion)
        service = DemoService(config, Generator(model, tokenizer, config), index, decision=answer_all)
        final = list(service.ask("Wie viele ECTS hat DS-101?", None, False, 8, 0.0, 0.9, 2))[-1]
        streamed = [u[1] for u in service.ask("Wie viele ECTS hat DS-101?", None, False, 8, 0.0, 0.9, 2)]
        assert any("Laut Abschnitt [" in s for s in streamed)
        cited = parse_answer(streamed[-2].replace("▌", "")).cited
        assert cited and 1 <= cited[0] <= 2, final
        hits = index.search("Wie viele ECTS hat DS-101?", 2)
        expected = service.generator.decided_answer("Wie viele ECTS hat DS-101?", [h.chunk for h in hits], cited[0])
        assert expected and expected.startswith(f"Laut Abschnitt [{cited[0]}]")
        assert streamed[-2].replace("▌", "").strip() == expected   # not free text after the lead
        refuse_all = DecisionThreshold(refusal_threshold=float("-inf"), tuned_on="test", mode=mode, fusion=fusion)
        service = DemoService(config, Generator(model, tokenizer, config), index, decision=refuse_all)
        updates = list(service.ask("Wie viele ECTS hat DS-101?", None, False, 8, 0.0, 0.9, 2))
        assert any(REFUSAL in u[1] for u in updates)


def test_ask_writes_in_the_shipped_answer_mode(tiny):
    """answer_mode generated: the decision's forced lead `Laut Abschnitt [n] (Titel):`, then the model's own
    text (not the extracted sentence); free: no decision at all, the model's own generation."""
    from answering.answer import forced_lead
    from answering.decision import DecisionThreshold
    from dataset_builder.contract import parse_answer
    from demo_space.app import DemoService
    from demo_space.generation import Generator, Sampling
    from demo_space.retrieval import ChunkIndex
    from demo_space.settings import DemoConfig
    from dataset_builder.contract import render_prompt_text

    model, tokenizer = tiny
    config = DemoConfig()
    index = ChunkIndex(catalog_chunks())
    question = "Wie viele ECTS hat DS-101?"
    chunks = [h.chunk for h in index.search(question, 2)]
    prompt = render_prompt_text(tokenizer, question, chunks)
    generator = Generator(model, tokenizer, config)
    for mode in ("generated", "free"):
        decision = DecisionThreshold(refusal_threshold=float("inf"), tuned_on="test", mode="lead", answer_mode=mode)
        service = DemoService(config, generator, index, decision=decision)
        answer = list(service.ask(question, None, False, 8, 0.0, 0.9, 2))[-2][1].replace("▌", "").strip()
        if mode == "generated":
            number = parse_answer(answer).cited[0]
            lead = forced_lead(number, chunks[number - 1])
            assert answer.startswith(lead + " ")
            own = list(generator.stream(prompt + lead, Sampling(max_new_tokens=8)))[-1]
            assert answer == f"{lead} {own.lstrip()}".strip()
            assert answer != generator.decided_answer(question, chunks, number)
        else:
            assert answer == list(generator.stream(prompt, Sampling(max_new_tokens=8)))[-1].strip()
