"""The demo app end to end through `gradio_client`: started in-process on a tiny random model whose
4-bit base, LoRA adapter and corpus dataset come from the local Hub, exactly as on a Space."""

from __future__ import annotations

import pytest

from helpers import free_port, publish_tiny_stack, tiny_demo_config

QUESTION = "Wer ist für das Modul Lineare Algebra verantwortlich?"


@pytest.fixture(scope="module")
def running_app(local_hub, tmp_path_factory):
    from demo_space.app import build_app

    ids = publish_tiny_stack(tmp_path_factory.mktemp("tiny-stack"), "demo-app")
    app = build_app(tiny_demo_config(ids))  # loads base (4-bit NF4) + adapter + corpus from the Hub
    port = free_port()
    app.launch(prevent_thread_lock=True, server_port=port, server_name="127.0.0.1", quiet=True)
    yield app, f"http://127.0.0.1:{port}/", ids
    app.close()


@pytest.fixture
def client(running_app):
    from gradio_client import Client

    return Client(running_app[1], verbose=False)


def ask(client, question, compare=False, max_new_tokens=12, top_k=3):
    job = client.submit(question, compare, max_new_tokens, 0.0, 0.9, top_k, api_name="/ask")
    updates = list(job)  # iterating the job yields each streamed update
    return updates, job.outputs()[-1]


def test_loaded_from_hub_in_4bit_with_adapter(running_app):
    app, _, ids = running_app
    service = app.rag_service
    model = service.generator.model
    assert service.generator.has_adapter and "default" in model.peft_config
    assert model.peft_config["default"].base_model_name_or_path == ids["base"]
    assert getattr(model.get_base_model(), "is_loaded_in_4bit", False)
    assert len(service.index) > 20  # unique contexts of the dataset's splits


def test_question_streams_an_answer_with_its_sources(client):
    updates, (notice, answer, base, sources) = ask(client, QUESTION)
    assert len(updates) > 3, "the answer must arrive token by token, not in one piece"
    partial = [u[1] for u in updates if u[1].endswith("▌")]
    assert len({p for p in partial}) > 2  # the text grew while streaming
    assert answer and not answer.endswith("▌")
    assert "Lineare Algebra" in sources and "DS-103" in sources and "ECTS" in sources
    assert notice == "" and base == ""


def test_compare_with_base_model(client):
    _, (notice, answer, base, sources) = ask(client, QUESTION, compare=True)
    assert answer and base and base != answer  # the random adapter changes the greedy output


def test_empty_question_is_a_friendly_message(client):
    _, (notice, answer, base, sources) = ask(client, "   ")
    assert notice == "⚠️ Bitte gib eine Frage ein." and answer == "" and sources == ""


def test_overlong_question_is_cut_with_notice(client):
    question = QUESTION + " " + "Bitte ausführlich. " * 1100
    assert len(question) > 20_000
    _, (notice, answer, _, sources) = ask(client, question[:20_000])
    assert "20.000 Zeichen" in notice and "gekürzt" in notice
    assert answer and "Lineare Algebra" in sources


def test_upload_replaces_the_corpus_and_bad_files_are_reported(client, tmp_path):
    from gradio_client import handle_file

    good = tmp_path / "pruefungsordnung.md"
    good.write_text("---\nmodule_code: BA-900\nects: 12\n---\n# Bachelorarbeit\n\nDie Bachelorarbeit umfasst "
                    "12 ECTS-Punkte und dauert neun Wochen.\n", encoding="utf-8")
    broken = tmp_path / "scan.pdf"
    broken.write_bytes(b"%PDF-1.7 truncated")
    unsupported = tmp_path / "noten.xlsx"
    unsupported.write_bytes(b"PK\x03\x04 not a text file")
    status = client.predict([handle_file(str(good)), handle_file(str(broken)), handle_file(str(unsupported))],
                            api_name="/upload_documents")
    assert "pruefungsordnung.md" in status and "1 Abschnitte" in status
    assert "scan.pdf" in status and "keine lesbare PDF" in status
    assert "noten.xlsx" in status and "nicht unterstützt" in status
    _, (notice, answer, _, sources) = ask(client, "Wie viele ECTS hat die Bachelorarbeit?")
    assert "BA-900" in sources and "pruefungsordnung.md" in sources and "Lineare Algebra" not in sources

    status = client.predict([handle_file(str(broken))], api_name="/upload_documents")
    assert "keine lesbare PDF" in status and "Keine Datei konnte verwendet werden" in status
    _, (_, answer, _, sources) = ask(client, QUESTION)  # the app keeps serving, from the dataset again
    assert answer and "Lineare Algebra" in sources


def test_rag_de_demo_command_serves_the_app(running_app, local_hub, tmp_path):
    """`rag-de demo` as a user starts it: a subprocess against the local Hub, answering through the API."""
    import subprocess
    import sys
    import time
    import urllib.request

    from gradio_client import Client

    from helpers import REPO_ROOT

    ids = running_app[2]
    port = free_port()
    log = open(tmp_path / "demo.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag_de", "demo", "--base", ids["base"], "--adapter", ids["adapter"],
         "--dataset", ids["dataset"], "--max-new-tokens", "8", "--port", str(port), "--endpoint", local_hub.endpoint],
        cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "demo.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except OSError:
                assert time.time() < deadline, "rag-de demo did not answer within 180 s"
                time.sleep(1)
        job = Client(f"http://127.0.0.1:{port}/", verbose=False).submit(QUESTION, False, 8, 0.0, 0.9, 3,
                                                                         api_name="/ask")
        notice, answer, _, sources = job.result(timeout=120)
        assert answer and "Lineare Algebra" in sources
    finally:
        proc.terminate()
        proc.wait(20)
