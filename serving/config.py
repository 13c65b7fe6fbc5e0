"""`rag-de export merged|gguf` settings as typed dataclasses (YAML + CLI flags through `rag_de.config`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rag_de.errors import UserError


class ExportError(UserError):
    """Bad input for an export; the message says what, where and how to fix it (reported by `rag-de`)."""


@dataclass
class ExportSource:
    """Which adapter to export, onto which base, where to, and whether to push."""

    adapter: str = field(default="", metadata={"help": "PEFT adapter: Hub id or local folder (required)"})
    adapter_revision: str | None = field(default=None, metadata={"help": "adapter revision on the Hub"})
    base: str = field(default="", metadata={
        "help": "base model (Hub id or folder); default: the adapter's base_model_name_or_path, which it "
        "must match"})
    out: str = field(default="", metadata={"help": "output path; must not exist yet (required)"})
    push: str = field(default="", metadata={"help": "Hub repo to upload the export to in one commit (org/NAME)"})
    private: bool = field(default=False, metadata={"help": "create the --push repo as private"})
    merge_dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(default="auto", metadata={
        "help": "precision the base is loaded and merged in; auto = bfloat16 on CUDA, float32 on CPU (never "
        "4-bit: merging into quantized weights drifts)"})
    device: str | None = field(default=None, metadata={"help": "cuda or cpu (default: cuda if available)"})
    verify_prompts: int = field(default=2, metadata={
        "help": "contract prompts on which the merged model's logits are compared with base + adapter before "
        "saving (0 = skip); the max |difference| goes into export.json and the card"})


@dataclass
class MergedExportConfig(ExportSource):
    """`rag-de export merged`: safetensors + tokenizer + chat template + generation config + card."""


@dataclass
class GGUFExportConfig(ExportSource):
    """`rag-de export gguf`: one GGUF file (llama family) plus an Ollama Modelfile beside it."""

    dtype: Literal["f32", "f16", "q8_0"] = field(default="f16", metadata={
        "help": "GGUF tensor type of the 2-D weights (norms stay f32); q8_0 falls back to f16 for a tensor "
        "whose rows are not a multiple of 32"})
    modelfile: bool = field(default=True, metadata={"help": "write an Ollama Modelfile next to the .gguf"})
    temperature: float = field(default=0.0, metadata={
        "help": "Ollama sampling temperature in the Modelfile (0 = greedy, as the adapter was evaluated)"})
    num_ctx: int = field(default=4096, metadata={
        "help": "Ollama context window in the Modelfile (the contract's prompts hold several chunks)"})
