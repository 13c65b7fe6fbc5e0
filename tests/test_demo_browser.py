"""A real browser on the demo page: headless Chromium (Debian's `chromium` package) driven by Playwright.

Needs `/usr/bin/chromium` (`apt-get install chromium fonts-dejavu-core`; `.ci/run` does that); a missing
browser fails the test with that instruction instead of skipping it.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from helpers import free_port, publish_tiny_stack, tiny_demo_config

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def demo_url(local_hub, tmp_path_factory):
    from demo_space.app import build_app

    ids = publish_tiny_stack(tmp_path_factory.mktemp("tiny-stack"), "demo-browser")
    app = build_app(tiny_demo_config(ids, max_new_tokens=16))
    port = free_port()
    app.launch(prevent_thread_lock=True, server_port=port, server_name="127.0.0.1", quiet=True)
    yield f"http://127.0.0.1:{port}/"
    app.close()


@pytest.fixture
def page():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found: install Debian's Chromium with "
                    "`apt-get install chromium fonts-dejavu-core` (the browser test needs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000}, locale="de-DE")
        page.set_default_timeout(TIMEOUT_MS)
        yield page
        browser.close()


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("RAG_DE_ARTIFACTS"):
        target = Path(os.environ["RAG_DE_ARTIFACTS"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target / name)
    return path


def test_ask_in_the_browser_shows_streamed_answer_and_source(page, demo_url, tmp_path):
    from playwright.sync_api import expect

    page.goto(demo_url)
    question = page.locator("#question textarea")
    question.fill("Wer ist für das Modul Lineare Algebra verantwortlich?")
    page.locator("#ask-btn").click()
    answer = page.locator("#answer")
    # Finished: the streaming cursor is gone and the source line (or, from a random model, the note that
    # no source was cited) follows the text.
    page.wait_for_function(
        "() => { const t = document.querySelector('#answer')?.innerText || '';"
        " return t.trim().length > 0 && !t.includes('▌'); }", timeout=TIMEOUT_MS)
    sources = page.locator("#sources")
    expect(sources).to_contain_text("Lineare Algebra")
    expect(sources).to_contain_text("DS-103")
    expect(answer).to_contain_text(re.compile(r"Quelle|Keine Antwort in den Quellen"))
    shot = save_screenshot(page, tmp_path, "demo_answer.png")
    assert shot.stat().st_size > 10_000


def test_empty_question_shows_a_message_and_the_page_keeps_working(page, demo_url, tmp_path):
    from playwright.sync_api import expect

    page.goto(demo_url)
    page.locator("#ask-btn").click()
    expect(page.locator("#notice")).to_contain_text("Bitte gib eine Frage ein.")
    page.locator("#question textarea").fill("Wie viele ECTS hat DS-101?")
    page.locator("#ask-btn").click()
    expect(page.locator("#sources")).to_contain_text("DS-101")
    expect(page.locator("#notice")).not_to_contain_text("Bitte gib eine Frage ein.")
    save_screenshot(page, tmp_path, "demo_empty_then_answer.png")
