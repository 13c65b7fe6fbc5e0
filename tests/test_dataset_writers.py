"""Answer writers and the answer check: extractive sentences, the HTTP writer against a flaky local
OpenAI-compatible stub (retries, fallbacks, on-disk cache, resume after SIGKILL), and a local tiny
random transformers model whose answers fail the check and fall back (counted)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from dataset_builder.answer_check import check_answer
from dataset_builder.build_config import BuildConfig, OpenAIWriterConfig, TransformersWriterConfig
from dataset_builder.contract import Chunk
from dataset_builder.pipeline import BuildInputs, build
from dataset_builder.schema import load_built
from dataset_builder.writers.base import WriteRequest
from dataset_builder.writers.cache import cache_key
from dataset_builder.writers.extractive import extractive_answer
from dataset_builder.writers.openai_writer import PREFLIGHT

REPO = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "mini_corpus"
INPUTS = BuildInputs(corpora=[(str(FIXTURE / "catalog"), str(FIXTURE / "qa.jsonl"))])
HINT_RE = re.compile(r"Auszug aus Abschnitt \[(\d+)\]\): „(.*)“")


@pytest.mark.parametrize("answer,reason", [
    ("Die Klausur dauert 90 Minuten [2].", None),
    ("Laut Abschnitt [2] dauert die Klausur neunzig Minuten, also 90 Minuten.", None),
    ("Die Klausuren dauern jeweils 90 Minuten [2].", None),                 # inflected paraphrase
    ("Die Klausur dauert 60 Minuten [2].", "number_changed"),
    ("Die Prüfung ist mündlich [2].", "number_changed"),
    ("Die Klausur dauert 90 Minuten.", "missing_gold_citation"),
    ("Die Klausur dauert 90 Minuten [1].", "missing_gold_citation"),
    ("Die Klausur dauert 90 Minuten [2][7].", "citation_out_of_range"),
    ("Leider enthalten die bereitgestellten Informationen keine Antwort auf diese Frage, daher kann ich "
     "sie nicht beantworten.", "refusal"),
    ("", "empty"),
])
def test_answer_check(answer, reason):
    assert check_answer(answer, "Klausur von 90 Minuten", 2, 3) == reason


def test_paraphrase_threshold_and_length_limit():
    assert check_answer("Geprüft wird schriftlich [1].", "schriftliche Klausur", 1, 1) == "span_missing"
    assert check_answer("Geprüft wird in einer Klausur [1].", "schriftliche Klausur", 1, 1, min_overlap=0.5) is None
    assert check_answer("Wort " * 130 + "Klausur [1].", "Klausur", 1, 1) == "too_long"


def test_extractive_answer_uses_the_sentence_and_heading_for_fragments():
    chunk = Chunk("m#1", "## Prüfung\n- Klausur, 90 Minuten\n- Bonus durch Übungen", "M Statistik", "M.md")
    start = chunk.text.index("90 Minuten")
    req = WriteRequest("Wie lange?", [Chunk("x#0", "Anderes."), chunk], 2, "90 Minuten", start)
    assert extractive_answer(req) == "Laut Abschnitt [2] (M Statistik): Prüfung: Klausur, 90 Minuten."
    prose = Chunk("m#2", "## Inhalte\nEs geht um Tests. Die Klausur dauert 90 Minuten. Danach Ferien.", "M", "M.md")
    req = WriteRequest("Wie lange?", [prose], 1, "90 Minuten", prose.text.index("90 Minuten"))
    assert extractive_answer(req, cite_title=False) == "Laut Abschnitt [1]: Die Klausur dauert 90 Minuten."


# --------------------------------------------------------------------------- OpenAI-compatible stub


class Stub:
    """A local /v1/chat/completions that fails some calls. Counting distinct requests in arrival order:
    the first try of every third gets a 500, of every fourth (otherwise) a reply slower than the client's
    timeout; every fifth request gets an uncited (bad) answer; `always_fail` questions always get 500."""

    def __init__(self, always_fail: str = "", delay: float = 0.0, flaky: bool = True):
        self.always_fail, self.delay, self.flaky = always_fail, delay, flaky
        self.lock = threading.Lock()
        self.posts: Counter = Counter()          # key -> POSTs received
        self.ok: Counter = Counter()             # key -> 200 answers sent
        self.events: Counter = Counter()
        self.bad_keys: set[str] = set()
        self.order: dict[str, int] = {}
        self.enough = threading.Event()
        self.enough_after = 10 ** 9
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stub.handle(self, body)

        return Handler

    def handle(self, http, body):
        messages = body["messages"]
        if messages == PREFLIGHT:                 # the writer's health check: answered, counted apart
            return self._send(http, 200, {"choices": [{"message": {"role": "assistant", "content": "OK"}}]},
                              "preflight")
        # the writer's cache key: sha256 of (model, messages, params), so the test can match cache files
        key = cache_key(body["model"], messages, {k: body[k] for k in ("temperature", "max_tokens")})
        user = messages[-1]["content"]
        failing = bool(self.always_fail) and self.always_fail in user
        with self.lock:
            attempt = self.posts[key]
            self.posts[key] += 1
            if attempt == 0:
                self.order[key] = len(self.order)
                # arrival order depends on thread timing: the always-failing request is never "bad"
                if self.flaky and self.order[key] % 5 == 2 and not failing:
                    self.bad_keys.add(key)
            n = self.order[key]
        if failing:
            return self._send(http, 500, {"error": "always failing"}, "always_500")
        if self.flaky and attempt == 0 and n % 3 == 0:
            return self._send(http, 500, {"error": "flaky"}, "first_500")
        if self.flaky and attempt == 0 and n % 4 == 1:
            time.sleep(1.0)                       # the client times out (timeout_s=0.5) and retries
            return self._send(http, 200, {"choices": []}, "timeout")
        content = self.reply(user, key)
        time.sleep(self.delay)
        with self.lock:
            self.ok[key] += 1
            if sum(self.ok.values()) >= self.enough_after:
                self.enough.set()
        return self._send(http, 200, {"choices": [{"message": {"role": "assistant", "content": content}}]}, "ok")

    def reply(self, user: str, key: str) -> str:
        """The answer's text (a subclass scripts other replies, e.g. tests/test_documents.py's questions)."""
        number, span = HINT_RE.search(user).groups()
        if key in self.bad_keys:
            return f"Die Antwort ist {span}."
        return f"Laut Abschnitt [{number}] lautet die Antwort: {span}."

    def _send(self, http, status, payload, event):
        with self.lock:
            self.events[event] += 1
        data = json.dumps(payload).encode()
        try:
            http.send_response(status)
            http.send_header("Content-Type", "application/json")
            http.send_header("Content-Length", str(len(data)))
            http.end_headers()
            http.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def openai_config(url: str, cache: Path, **kw) -> BuildConfig:
    return BuildConfig(seed=3, writer="openai", cache_dir=str(cache), openai=OpenAIWriterConfig(
        base_url=url, model="stub-model", concurrency=4, max_retries=3, backoff_s=0.05, timeout_s=0.5, **kw))


def cached_keys(cache: Path) -> set[str]:
    return {p.stem for p in (cache / "openai").rglob("*.json")}


def test_http_writer_survives_failures_falls_back_and_reuses_its_cache(tmp_path):
    extractive = build(INPUTS, tmp_path / "extractive", BuildConfig(seed=3), progress=False)
    first = next(r for r in load_built(tmp_path / "extractive")["train"] if r["answerable"])
    answerable = extractive["totals"]["answerable"]
    with Stub(always_fail=first["question"]) as stub:
        stats = build(INPUTS, tmp_path / "out", openai_config(stub.url, tmp_path / "cache"), progress=False)
        writer = stats["writer"]
        assert stub.events["first_500"] > 0 and stub.events["timeout"] > 0 and writer["retries"] > 0
        assert writer["requests"] == answerable and writer["errors"] == 1
        assert writer["fallbacks"].get("writer_error") == 1
        assert writer["fallbacks"].get("missing_gold_citation", 0) == len(stub.bad_keys)
        assert stats["totals"] == extractive["totals"]
        rows = {r["id"]: r for ds in load_built(tmp_path / "out").values() for r in ds}
        generated = [r for r in rows.values() if "lautet die Antwort" in r["answer"]]
        assert len(generated) == answerable - 1 - len(stub.bad_keys) > 0
        # generated answers take the contract's form: source lead with the title, one citation
        assert all(re.match(r"Laut Abschnitt \[\d\] \([^)]+\) lautet die Antwort: ", r["answer"]) for r in generated)
        assert "lautet" not in rows[first["id"]]["answer"]         # fell back to the extractive sentence
        assert len(cached_keys(tmp_path / "cache")) == answerable - 1

        before = Counter(stub.posts)
        again = build(INPUTS, tmp_path / "again", openai_config(stub.url, tmp_path / "cache"), progress=False)
        repeated = {k for k in stub.posts if stub.posts[k] != before[k]}
        assert repeated == {k for k in stub.posts if k not in cached_keys(tmp_path / "cache")}
        assert len(repeated) == 1                                      # only the request that never succeeded
        assert again["writer"]["cache_hits"] == answerable - 1
        assert (tmp_path / "again" / "train.parquet").read_bytes() == (tmp_path / "out" / "train.parquet").read_bytes()


def test_http_writer_resumes_after_sigkill_without_repeating_cached_calls(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "out"
    with Stub(delay=0.15, flaky=False) as stub:
        stub.enough_after = 5
        cmd = [sys.executable, "-m", "rag_de", "build", "--corpus", str(FIXTURE / "catalog"),
               "--qa", str(FIXTURE / "qa.jsonl"), "--out", str(out), "--seed", "3", "--writer", "openai",
               "--openai.model", "stub-model", "--openai.base_url", stub.url, "--openai.concurrency", "1",
               "--cache_dir", str(cache)]
        env = {**os.environ, "RAG_DE_NO_PROGRESS": "1"}
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            assert stub.enough.wait(120), "the build never reached the stub"
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        assert not list(out.glob("*.parquet"))                 # a killed build shows no half dataset
        done = cached_keys(cache)
        assert len(done) >= 4
        before = Counter(stub.posts)

        stub.delay = 0.0
        stats = build(INPUTS, out, openai_config(stub.url, cache), progress=False)
        called_again = {k for k in stub.posts if stub.posts[k] > before[k]}
        assert not called_again & done                         # nothing cached was asked twice
        assert stats["writer"]["cache_hits"] == len(done)
        assert stats["writer"]["errors"] == 0
        assert len(cached_keys(cache)) == stats["writer"]["requests"]


class JunkServer:
    """Answers every POST with 200 and an HTML page: a URL that is a web server, not an OpenAI endpoint."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                data = b"<html><body>Welcome</body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_unreachable_or_junk_endpoint_stops_the_build_before_anything_is_written(tmp_path):
    from helpers import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    junk = JunkServer()
    try:
        for url, said in [(dead, "connection error"), (junk.url, "choices[0].message.content")]:
            out = tmp_path / f"out-{said[:4]}"
            cmd = [sys.executable, "-m", "rag_de", "build", "--corpus", str(FIXTURE / "catalog"),
                   "--qa", str(FIXTURE / "qa.jsonl"), "--out", str(out), "--writer", "openai",
                   "--openai.model", "m", "--openai.base_url", url, "--openai.max_retries", "1",
                   "--openai.backoff_s", "0.05", "--cache_dir", str(tmp_path / "cache")]
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120,
                                  env={**os.environ, "RAG_DE_NO_PROGRESS": "1"})
            assert proc.returncode == 2, proc.stderr
            line = proc.stderr.strip().splitlines()[-1]
            assert line.startswith("rag-de build: error: the OpenAI-compatible endpoint " + url), line
            assert said in line and "nothing was written" in line and "--writer extractive" in line
            assert "Traceback" not in proc.stderr
            assert not out.exists() or not any(out.iterdir())
    finally:
        junk.close()


# --------------------------------------------------------------------------- local transformers model


@pytest.fixture(scope="module")
def tiny_chat_model(tmp_path_factory):
    """A tiny random Llama with a BPE tokenizer trained on the fixture texts and a ChatML template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-writer")
    texts = [p.read_text(encoding="utf-8") for p in sorted((FIXTURE / "catalog").glob("*.md"))]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok.train_from_iterator(texts * 3, trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                                           initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", bos_token=None)
    fast.chat_template = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
                          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    fast.save_pretrained(folder)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=16384,
                         eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, bos_token_id=None)
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def test_transformers_writer_falls_back_and_counts(tiny_chat_model, tmp_path):
    reference = build(INPUTS, tmp_path / "ref", BuildConfig(seed=3), progress=False)
    config = BuildConfig(seed=3, writer="transformers", transformers=TransformersWriterConfig(
        model=str(tiny_chat_model), batch_size=8, max_new_tokens=6, device="cpu"))
    stats = build(INPUTS, tmp_path / "out", config, progress=False)
    answerable = reference["totals"]["answerable"]
    assert stats["writer"]["name"] == "transformers" and stats["writer"]["generated"] == answerable
    # random weights cannot cite the gold chunk: every answer fails the check, is counted, falls back
    assert stats["writer"]["fallbacks_total"] == answerable
    assert set(stats["writer"]["fallbacks"]) <= {"missing_gold_citation", "empty", "citation_out_of_range"}
    for name in reference["files"]:
        assert (tmp_path / "out" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes()


# --------------------------------------------------------------------------- a real OpenAI-compatible server


@pytest.mark.slow
def test_real_server_writes_answers_with_the_embedded_model(request, tmp_path):
    """`rag-de build --writer openai` against `transformers serve` running the embedded SmolLM2 on CPU: every
    answerable row is one real HTTP completion; what passes the answer check is kept, the rest falls back
    to the extractive sentence, both counted (the measured pass rate is printed)."""
    server = request.getfixturevalue("real_openai_server")
    qa = tmp_path / "qa.jsonl"
    lines = (FIXTURE / "qa.jsonl").read_text(encoding="utf-8").splitlines()
    qa.write_text("\n".join(lines[:6]) + "\n", encoding="utf-8")
    out, cache = tmp_path / "out", tmp_path / "cache"
    cmd = [sys.executable, "-m", "rag_de", "build", "--corpus", str(FIXTURE / "catalog"), "--qa", str(qa),
           "--out", str(out), "--seed", "3", "--writer", "openai", "--openai.model", server.model,
           "--openai.base_url", server.base_url, "--openai.concurrency", "1", "--openai.max_tokens", "60",
           "--openai.timeout_s", "300", "--cache_dir", str(cache)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "RAG_DE_NO_PROGRESS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    stats = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    writer = stats["writer"]
    print(f"\n[real server] writer stats: {json.dumps(writer, ensure_ascii=False)}")
    answerable = stats["totals"]["answerable"]
    assert writer["name"] == "openai" and writer["base_url"] == server.base_url
    assert writer["requests"] == answerable > 0 and writer["http_calls"] >= answerable and writer["errors"] == 0
    assert len(cached_keys(cache)) == answerable                 # every reply came from the server, cached
    # the same build with the offline writer: rows the server's answers replaced differ from it, the
    # fallbacks (counted by reason) equal it
    extractive = tmp_path / "extractive"
    build(BuildInputs(corpora=[(str(FIXTURE / "catalog"), str(qa))]), extractive, BuildConfig(seed=3),
          progress=False)
    plain = {r["id"]: r["answer"] for ds in load_built(extractive).values() for r in ds}
    rows = [r for ds in load_built(out).values() for r in ds if r["answerable"]]
    written = [r for r in rows if r["answer"] != plain[r["id"]]]
    assert len(rows) == answerable and len(written) == answerable - writer["fallbacks_total"]
    assert all(r["answer"].startswith("Laut Abschnitt [") for r in written)
