"""Writer (c): any OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, TGI, llama.cpp, HF providers).

`ChatEndpoint` is the HTTP part, shared with question generation (`dataset_builder.questions`): requests run on a bounded thread pool (`concurrency`); 429/5xx answers, timeouts and connection errors
are retried with exponential backoff (honouring Retry-After); every answer is cached on disk the moment
it arrives, so an interrupted build resumes without repeating a call. A request that still fails is
returned as None: the builder falls back to the extractive writer and counts it.

Before the first request that is not served from the cache, one short health check (`PREFLIGHT`) asks
the endpoint for a reply: an unreachable server, a wrong model name, a non-OpenAI reply or an auth error
then stops the build with an `EndpointError` naming the endpoint and the fix, before any output exists,
instead of a whole dataset of silent fallbacks. A build served entirely from the cache needs no server.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from dataset_builder.build_config import OpenAIWriterConfig
from dataset_builder.writers.base import AnswerWriter, WriteRequest
from dataset_builder.writers.cache import ResponseCache, cache_key
from dataset_builder.writers.prompt import writer_messages
from rag_de.errors import UserError

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 60.0
PREFLIGHT = [{"role": "user", "content": "Antworte nur mit: OK"}]
PREFLIGHT_MAX_TOKENS = 4


class EndpointError(UserError):
    """The OpenAI-compatible endpoint cannot serve the build (found by the preflight request)."""


class ChatEndpoint:
    """Cached, concurrent, retrying chat completions: messages lists in, reply texts (None: failed) out."""

    def __init__(self, config: OpenAIWriterConfig, cache_dir: str | Path, params: dict):
        import httpx

        self.config = config
        self.cache = ResponseCache(cache_dir)
        headers = {"Content-Type": "application/json"}
        api_key = os.environ.get(config.api_key_env)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.client = httpx.Client(base_url=config.base_url.rstrip("/"), headers=headers, timeout=config.timeout_s,
                                   limits=httpx.Limits(max_connections=max(1, config.concurrency)))
        self.params = dict(params)
        self._lock = threading.Lock()
        self.counts = {"requests": 0, "cache_hits": 0, "http_calls": 0, "retries": 0, "errors": 0}
        self.error_examples: list[str] = []
        self.checked = False

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def complete(self, messages: Sequence[list[dict]]) -> list[str | None]:
        keys = [cache_key(self.config.model, m, self.params) for m in messages]
        self._count("requests", len(messages))
        answers: dict[str, str | None] = {}
        todo: dict[str, list[dict]] = {}
        for key, msgs in zip(keys, messages):
            if key in answers or key in todo:
                continue
            cached = self.cache.get(key)
            if cached is not None:
                answers[key] = cached
                self._count("cache_hits")
            else:
                todo[key] = msgs
        if todo:
            self.preflight()
            with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency)) as pool:
                for key, content in zip(todo, pool.map(self._fetch, todo.items())):
                    answers[key] = content
        return [answers[k] for k in keys]

    def preflight(self) -> None:
        """One short request (with the usual retries, not cached, not counted): raises `EndpointError`
        unless the endpoint answers it with a chat completion."""
        if self.checked:
            return
        payload = {"model": self.config.model, "messages": PREFLIGHT, "temperature": 0.0,
                   "max_tokens": PREFLIGHT_MAX_TOKENS}
        content, problem, status = self._post(payload, count=False)
        if content is None:
            raise EndpointError(_endpoint_advice(self.config, problem, status))
        self.checked = True

    def _fetch(self, item: tuple[str, list[dict]]) -> str | None:
        """One request with retries; the answer is cached before it is returned."""
        key, messages = item
        payload = {"model": self.config.model, "messages": messages, **self.params}
        content, problem, _ = self._post(payload)
        if content is not None:
            self.cache.put(key, content, self.config.model)
            return content
        self._count("errors")
        with self._lock:
            if len(self.error_examples) < 10:
                self.error_examples.append(problem)
        return None

    def _post(self, payload: dict, count: bool = True) -> tuple[str | None, str, int | None]:
        """POST /chat/completions with retries -> (reply text or None, the last problem, HTTP status)."""
        import httpx

        problem, status = "", None
        for attempt in range(self.config.max_retries + 1):
            if count:
                if attempt:
                    self._count("retries")
                self._count("http_calls")
            delay = self.config.backoff_s * (2 ** attempt) * (1 + random.random() / 4)
            try:
                response = self.client.post("/chat/completions", json=payload)
            except httpx.TimeoutException:
                problem = "timeout"
            except httpx.TransportError as exc:
                problem = f"connection error: {type(exc).__name__}"
            else:
                status = response.status_code
                if status == 200:
                    content = _content(response)
                    if content is not None:
                        return content, "", status
                    problem = "response without choices[0].message.content"
                    break
                problem = f"HTTP {status}"
                if status not in RETRY_STATUS:
                    break
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    delay = min(float(retry_after), MAX_RETRY_AFTER_S)
            if attempt < self.config.max_retries:
                time.sleep(delay)
        return None, problem, status

    def stats(self) -> dict:
        return {**self.counts, "error_examples": list(self.error_examples), "model": self.config.model,
                "base_url": self.config.base_url, "concurrency": self.config.concurrency}

    def close(self) -> None:
        self.client.close()


class OpenAIWriter(AnswerWriter):
    name = "openai"

    def __init__(self, config: OpenAIWriterConfig, cache_dir: str | Path):
        self.config = config
        self.endpoint = ChatEndpoint(config, Path(cache_dir) / "openai",
                                     {"temperature": config.temperature, "max_tokens": config.max_tokens})

    def write(self, requests: Sequence[WriteRequest]) -> list[str | None]:
        return self.endpoint.complete([writer_messages(r) for r in requests])

    def stats(self) -> dict:
        return self.endpoint.stats()

    def close(self) -> None:
        self.endpoint.close()


def _endpoint_advice(config: OpenAIWriterConfig, problem: str, status: int | None) -> str:
    where = f"the OpenAI-compatible endpoint {config.base_url} (model {config.model!r})"
    if status in (401, 403):
        fix = f"set the API key in the environment variable {config.api_key_env} (--openai.api_key_env names it)"
    elif status == 404:
        fix = ("check --openai.base_url (the server's root up to /v1) and --openai.model (a model the server "
               "serves: GET /v1/models lists them)")
    elif status == 200:
        fix = "point --openai.base_url at an OpenAI-compatible /v1 root (vLLM, TGI, Ollama, `transformers serve`)"
    else:
        fix = ("start the server first (e.g. `vllm serve MODEL`, `ollama serve`, `transformers serve MODEL`) "
               "or fix --openai.base_url")
    return (f"{where} did not answer a test request ({problem or 'no reply'}); nothing was written. Fix: {fix}; "
            "or build with the offline default `--writer extractive`")


def _content(response) -> str | None:
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content.strip() if isinstance(content, str) else None
