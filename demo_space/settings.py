"""The demo's configuration, read from environment variables (a Space sets them as variables/secrets).

Every field names its variable in `metadata["env"]`; `rag-de demo` flags override the environment.
The Hub endpoint and token are not fields: `huggingface_hub` reads `HF_ENDPOINT` and `HF_TOKEN` (a
Space secret) itself, so a token never sits in a settings object, a log or a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Literal, Mapping

from rag_de.base_model import EMBEDDED_MODEL_ID

DEFAULT_BASE_MODEL = EMBEDDED_MODEL_ID
DEFAULT_DATASET = "org/spaces-rag-de"
# Written as Space variables even at their defaults, so the Space page shows what it serves.
ALWAYS_SET = ("base_model", "adapter", "dataset")


@dataclass
class DemoConfig:
    """What the demo loads and how it answers. Defaults suit the embedded SmolLM2 base on a CPU."""

    base_model: str = field(default=DEFAULT_BASE_MODEL, metadata={
        "env": "RAG_DE_BASE_MODEL", "help": "base model (Hub id) the adapter was trained on"})
    adapter: str | None = field(default=None, metadata={
        "env": "RAG_DE_ADAPTER", "help": "PEFT adapter (Hub id or local folder); unset: the base model alone"})
    adapter_revision: str | None = field(default=None, metadata={
        "env": "RAG_DE_ADAPTER_REVISION", "help": "adapter revision (branch, tag or commit)"})
    dataset: str | None = field(default=DEFAULT_DATASET, metadata={
        "env": "RAG_DE_DATASET", "help": "Hub dataset whose contexts form the search corpus; empty: uploads only"})
    dataset_revision: str | None = field(default=None, metadata={
        "env": "RAG_DE_DATASET_REVISION", "help": "dataset revision"})
    quantization: Literal["nf4", "fp4", "none"] = field(default="nf4", metadata={
        "env": "RAG_DE_QUANTIZATION", "help": "bitsandbytes 4-bit type of the base weights, or none"})
    compute_dtype: str = field(default="auto", metadata={
        "env": "RAG_DE_COMPUTE_DTYPE",
        "help": "dtype of the 4-bit matmuls and unquantized modules; auto: bfloat16 on CUDA, float32 on CPU "
                "(bf16 matmuls are about 2x slower on CPUs without AMX)"})
    device: str | None = field(default=None, metadata={
        "env": "RAG_DE_DEVICE", "help": "cuda or cpu; unset: cuda when available"})
    fast_generation: Literal["auto", "on", "off"] = field(default="auto", metadata={
        "env": "RAG_DE_FAST_GENERATION",
        "help": "static KV cache + torch.compile decode loop; auto: on with CUDA, plain generate on CPU"})
    compile_mode: str = field(default="reduce-overhead", metadata={
        "env": "RAG_DE_COMPILE_MODE", "help": "torch.compile mode of the fast path (reduce-overhead = CUDA graphs)"})
    static_cache_tokens: int = field(default=4096, metadata={
        "env": "RAG_DE_STATIC_CACHE_TOKENS",
        "help": "fast path: length of the one static KV cache reused by every request (fixed shapes = no "
                "recompiling); longer prompt + answer falls back to plain generate"})
    top_k: int = field(default=3, metadata={
        "env": "RAG_DE_TOP_K", "help": "chunks retrieved per question (default of the slider)"})
    dense_model: str | None = field(default=None, metadata={
        "env": "RAG_DE_DENSE_MODEL",
        "help": "dense encoder (Hub id or folder, any transformers encoder, e.g. intfloat/multilingual-e5-small) "
                "fused with BM25 by reciprocal rank fusion; unset (default: no German-capable encoder ships "
                "offline with the project) or not loadable: BM25 only, said in the UI and the log"})
    dense_prefixes: Literal["e5", "none"] = field(default="e5", metadata={
        "env": "RAG_DE_DENSE_PREFIXES",
        "help": "e5: \"query: \" / \"passage: \" before questions / chunks (e5 models expect them); none: plain text"})
    embedding_cache: str | None = field(default=None, metadata={
        "env": "RAG_DE_EMBEDDING_CACHE",
        "help": "folder of cached chunk embeddings (one file per corpus revision and model); unset: "
                "$RAG_DE_CACHE or ~/.cache/rag-de, then embeddings/"})
    max_new_tokens: int = field(default=160, metadata={
        "env": "RAG_DE_MAX_NEW_TOKENS", "help": "answer length limit in tokens (default of the slider)"})
    temperature: float = field(default=0.0, metadata={
        "env": "RAG_DE_TEMPERATURE", "help": "sampling temperature; 0 = greedy (default of the slider)"})
    top_p: float = field(default=0.9, metadata={
        "env": "RAG_DE_TOP_P", "help": "nucleus sampling mass when temperature > 0"})
    max_question_chars: int = field(default=1000, metadata={
        "env": "RAG_DE_MAX_QUESTION_CHARS", "help": "longer questions are cut to this length, with a notice"})
    chunk_max_tokens: int = field(default=180, metadata={
        "env": "RAG_DE_CHUNK_MAX_TOKENS", "help": "chunk size (words) for uploaded documents"})
    max_upload_mb: float = field(default=20.0, metadata={
        "env": "RAG_DE_MAX_UPLOAD_MB", "help": "largest accepted upload per file"})
    decide: Literal["auto", "off"] = field(default="auto", metadata={
        "env": "RAG_DE_DECIDE",
        "help": "auto: when the adapter ships a tuned threshold (rag_de_decision.json), its own probabilities "
                "decide answer-or-refuse and the cited chunk (among those shown), and the answer is written in "
                "the answer mode shipped with it (chosen on validation: the model's text after the forced lead, "
                "the cited chunk's best sentence, or free generation), as `rag-de evaluate`'s decided pipeline "
                "answers; off: free generation"})
    concurrency_limit: int = field(default=1, metadata={
        "env": "RAG_DE_CONCURRENCY", "help": "answers generated at once (queue concurrency of the ask event)"})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "DemoConfig":
        """Fields from their environment variables (empty = unset), then `overrides` (e.g. CLI flags)."""
        from rag_de.config import from_dict

        environ = os.environ if environ is None else environ
        data = {}
        for f in fields(cls):
            value = environ.get(f.metadata["env"])
            if value is not None and value.strip() != "":
                data[f.name] = value.strip()
        data.update({k: v for k, v in overrides.items() if v is not None})
        return from_dict(cls, data, where="demo settings (environment)")

    def env(self) -> dict[str, str]:
        """The settings as Space variables: what the Space loads always, other fields where not default."""
        default = DemoConfig()
        return {f.metadata["env"]: str(getattr(self, f.name)) for f in fields(self)
                if getattr(self, f.name) is not None
                and (f.name in ALWAYS_SET or getattr(self, f.name) != getattr(default, f.name))}
