"""Dense retrieval's half: a transformers encoder (mean pooling, L2-normalized) and its embedding cache.

Why plain `transformers`: any encoder a user names (a multilingual-e5 model, a German BERT) loads with
`AutoModel`, without sentence-transformers. Passage embeddings are the slow part (seconds per thousand
chunks on 2 cores), so they are cached on disk per corpus revision: the key hashes the model, the
prefixes and every chunk's id and text, so a new corpus (or a new model) never reuses stale vectors.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from rag_de.errors import UserError

log = logging.getLogger(__name__)

QUERY_PREFIX = "query: "        # e5-style prefixes; "" for encoders trained without them
PASSAGE_PREFIX = "passage: "
MAX_LENGTH = 256                # tokens per text; chunks are ~180 words, questions far shorter
BATCH_SIZE = 32


class DenseModelError(UserError):
    """The configured dense encoder cannot be loaded (missing folder, unknown id, not an encoder)."""


def default_cache_dir() -> Path:
    """`$RAG_DE_CACHE` or `$XDG_CACHE_HOME/rag-de` (default ~/.cache/rag-de), then `embeddings/`."""
    root = os.environ.get("RAG_DE_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "rag-de")
    return Path(root) / "embeddings"


class DenseEncoder:
    """`model` (Hub id or folder) as a sentence encoder: mean of the last hidden states over real tokens."""

    def __init__(self, model: str, query_prefix: str = QUERY_PREFIX, passage_prefix: str = PASSAGE_PREFIX,
                 max_length: int = MAX_LENGTH, batch_size: int = BATCH_SIZE):
        from transformers import AutoModel, AutoTokenizer

        self.model_id, self.query_prefix, self.passage_prefix = model, query_prefix, passage_prefix
        self.max_length, self.batch_size = max_length, batch_size
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
            self.model = AutoModel.from_pretrained(model).eval()
        except (OSError, ValueError, KeyError) as exc:
            raise DenseModelError(
                f"dense model {model!r}: cannot load it with transformers ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0] if str(exc) else ''}); name an encoder folder or Hub id "
                "(e.g. intfloat/multilingual-e5-small), or leave the dense model unset for BM25 only") from None

    def encode(self, texts: Sequence[str], prefix: str = "") -> np.ndarray:
        """(len(texts), dim) float32, unit length; texts longer than `max_length` tokens are cut."""
        import torch

        parts = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = [prefix + t for t in texts[start:start + self.batch_size]]
                enc = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="pt")
                hidden = self.model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                parts.append(torch.nn.functional.normalize(pooled, dim=-1).float().numpy())
        if not parts:
            dim = getattr(self.model.config, "hidden_size", 0)
            return np.zeros((0, dim), dtype=np.float32)
        return np.concatenate(parts)

    def encode_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self.encode(queries, self.query_prefix)

    def cache_key(self, ids: Sequence[str], texts: Sequence[str]) -> str:
        """Hash of model, prefixes, length cap and every (id, text): one key per corpus revision."""
        digest = hashlib.sha256()
        for part in (self.model_id, self.passage_prefix, str(self.max_length)):
            digest.update(part.encode() + b"\0")
        for cid, text in zip(ids, texts):
            digest.update(cid.encode() + b"\0" + text.encode() + b"\0")
        return digest.hexdigest()[:24]

    def encode_passages(self, ids: Sequence[str], texts: Sequence[str],
                        cache_dir: str | os.PathLike | None = None) -> np.ndarray:
        """Passage embeddings, read from `cache_dir` (default `default_cache_dir()`) when this corpus
        revision was embedded before, else computed and written there atomically."""
        from rag_de.atomic import atomic_open

        path = Path(cache_dir or default_cache_dir()) / f"{self.cache_key(ids, texts)}.npy"
        if path.exists():
            try:
                vectors = np.load(path)
                if vectors.shape[0] == len(texts):
                    return vectors
            except (OSError, ValueError) as exc:   # a damaged file is recomputed, not fatal
                log.warning("embedding cache %s unreadable (%s); recomputing", path, exc)
        vectors = self.encode(list(texts), self.passage_prefix)
        try:
            with atomic_open(path, "wb") as fh:
                np.save(fh, vectors)
        except OSError as exc:                      # a read-only cache folder costs time, not answers
            log.warning("embedding cache %s not written (%s)", path, exc)
        return vectors


PREFIXES = {"e5": (QUERY_PREFIX, PASSAGE_PREFIX), "none": ("", "")}   # the `dense_prefixes` settings


def load_encoder(model: str | None, prefixes: str = "e5") -> tuple[DenseEncoder | None, str]:
    """(encoder, note) for the demo and the evaluation: no model, or one that fails to load, gives
    (None, why), logged, so retrieval still works with BM25 alone."""
    if not model:
        note = "dense retrieval off: no encoder configured -> BM25 only"
        log.info(note)
        return None, note
    try:
        encoder = DenseEncoder(model, *PREFIXES[prefixes])
    except DenseModelError as exc:
        note = f"dense retrieval off: encoder {model!r} not available -> BM25 only"
        log.warning("%s (%s)", note, exc)
        return None, note
    return encoder, f"hybrid retrieval: BM25 + {model} (reciprocal rank fusion)"
