"""Pluggable answer writers: extractive (default, offline), transformers (local LM), openai (HTTP)."""

from __future__ import annotations

from pathlib import Path

from dataset_builder.writers.base import AnswerWriter, WriteRequest
from dataset_builder.writers.extractive import ExtractiveWriter, extractive_answer

__all__ = ["AnswerWriter", "WriteRequest", "ExtractiveWriter", "extractive_answer", "make_writer"]


def make_writer(config, cache_dir: str | Path) -> AnswerWriter:
    """The writer named by `config.writer` (a BuildConfig)."""
    if config.writer == "extractive":
        return ExtractiveWriter(config.cite_title)
    if config.writer == "transformers":
        from dataset_builder.writers.transformers_writer import TransformersWriter

        return TransformersWriter(config.transformers)
    if config.writer == "openai":
        from dataset_builder.writers.openai_writer import OpenAIWriter

        return OpenAIWriter(config.openai, cache_dir)
    raise ValueError(f"unknown writer {config.writer!r}; use extractive, transformers or openai")
