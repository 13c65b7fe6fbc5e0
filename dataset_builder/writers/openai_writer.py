"""Writer (c): any OpenAI-compatible `/v1/chat/completions` endpoint (vLLM, TGI, llama.cpp, HF providers).

`ChatEndpoint` is the HTTP part, shared with question generation (`dataset_builder.questions`): requests run on a bounded thread pool (`concurrency`); 429/5xx answers, timeouts and connection errors
are retried with exponential backoff (honouring Retry-After); every answer is cached on disk the moment
it arrives, so an interrupted build resumes without repeating a call. A request that still fails is
returned as None: the builder falls back to the extractive writer and counts it.
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

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 60.0


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
            with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency)) as pool:
                for key, content in zip(todo, pool.map(self._fetch, todo.items())):
                    answers[key] = content
        return [answers[k] for k in keys]

    def _fetch(self, item: tuple[str, list[dict]]) -> str | None:
        """One request with retries; the answer is cached before it is returned."""
        import httpx

        key, messages = item
        payload = {"model": self.config.model, "messages": messages, **self.params}
        problem = ""
        for attempt in range(self.config.max_retries + 1):
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
                if response.status_code == 200:
                    content = _content(response)
                    if content is not None:
                        self.cache.put(key, content, self.config.model)
                        return content
                    problem = "response without choices[0].message.content"
                    break
                problem = f"HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUS:
                    break
                retry_after = response.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    delay = min(float(retry_after), MAX_RETRY_AFTER_S)
            if attempt < self.config.max_retries:
                time.sleep(delay)
        self._count("errors")
        with self._lock:
            if len(self.error_examples) < 10:
                self.error_examples.append(problem)
        return None

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


def _content(response) -> str | None:
    try:
        content = response.json()["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return content.strip() if isinstance(content, str) else None
