"""Pluggable answer writers: extractive (default, offline), transformers (local LM), openai (HTTP)."""

from __future__ import annotations

from pathlib import Path

from dataset_builder.writers.base import AnswerWriter, WriteRequest
from dataset_builder.writers.extractive import ExtractiveWriter, extractive_answer

__all__ = ["AnswerWriter", "WriteRequest", "ExtractiveWriter", "extractive_answer", "make_writer"]


def make_writer(cfg, cache_dir: str | Path) -> AnswerWriter:
    """The writer named by `cfg.writer` (a BuildConfig)."""
    if cfg.writer == "extractive":
        return ExtractiveWriter(cfg.cite_title)
    if cfg.writer == "transformers":
        from dataset_builder.writers.transformers_writer import TransformersWriter

        return TransformersWriter(cfg.transformers)
    if cfg.writer == "openai":
        from dataset_builder.writers.openai_writer import OpenAIWriter

        return OpenAIWriter(cfg.openai, cache_dir)
    raise ValueError(f"unknown writer {cfg.writer!r}; use extractive, transformers or openai")
