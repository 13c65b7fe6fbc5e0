"""Everything an export can check before it loads a single weight: paths, adapter, base, architecture.

A 7B merge takes minutes and tens of GB; a wrong `--base`, an architecture the GGUF writer cannot write or
an existing output must fail in a second, with a message that says what, where and how to fix it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.config import ExportError, ExportSource

# The llama family the project targets (SmolLM2 is a LlamaForCausalLM): llama.cpp's "llama" architecture.
GGUF_ARCHITECTURES = {"LlamaForCausalLM": "llama", "MistralForCausalLM": "llama"}
# Rope scalings the GGUF writer can express in llama.cpp's metadata.
GGUF_ROPE_TYPES = ("default", "linear", "llama3")


@dataclass
class ExportPlan:
    """What the checks found; the export itself starts from here."""

    adapter: str
    adapter_revision: str | None
    base: str                 # the Hub id (or folder) the adapter names
    base_path: str            # where `from_pretrained` reads it (the embedded id maps to a local folder)
    model_config: Any         # transformers PretrainedConfig of the base
    adapter_config: Any       # peft PeftConfig
    out: Path


def _fail(what: str, where: str, fix: str) -> ExportError:
    return ExportError(f"{what}, {where}, {fix}")


def check_out_path(out: str, suffix: str | None = None, companions: tuple[str, ...] = ()) -> Path:
    """The output (and files written beside it) must not exist: an export never overwrites one."""
    if not out:
        raise _fail("no output path", "--out", "pass --out DIR (merged) or --out FILE.gguf (gguf)")
    path = Path(out)
    if suffix and path.suffix.lower() != suffix:
        raise _fail(f"the output must be a {suffix} file", f"--out {out}", f"pass --out {path.with_suffix(suffix)}")
    for candidate in (path, *(path.parent / name for name in companions)):
        if candidate.exists() or candidate.is_symlink():
            raise _fail("the output path exists", f"{candidate} (--out)",
                        "pass a new --out or delete the old export first")
    return path


def check_push_repo(repo: str) -> None:
    if not repo:
        return
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as exc:
        raise _fail(f"not a Hub repo id ({exc})", f"--push {repo}", "pass --push org/NAME") from None
    if "/" not in repo:
        raise _fail("the repo id has no namespace", f"--push {repo}", "pass --push org/NAME")


def read_adapter(config: ExportSource):
    """The adapter's config, and the base it must be merged into (checked against `--base`)."""
    if not config.adapter:
        raise _fail("no adapter", "--adapter", "pass --adapter org/ADAPTER or a local adapter folder")
    from evaluation.runner import EvalInputError, check_adapter_base, read_adapter_config

    try:
        adapter_config = read_adapter_config(config.adapter, config.adapter_revision)
        base = config.base or adapter_config.base_model_name_or_path or ""
        check_adapter_base(config.adapter, adapter_config.base_model_name_or_path, base)
    except EvalInputError as exc:
        raise ExportError(str(exc)) from None
    if str(getattr(adapter_config, "peft_type", "")).split(".")[-1].upper() != "LORA":
        raise _fail(f"the adapter is {adapter_config.peft_type}, not LoRA", f"adapter {config.adapter}",
                    "export a LoRA adapter (what `rag-de train` writes)")
    return adapter_config, base


def read_base_config(base: str, base_path: str):
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(base_path)
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read the base model's config.json ({exc})", f"base {base}",
                    "pass --base as a Hub id or a local model folder") from None
    if getattr(config, "quantization_config", None):
        method = dict(config.quantization_config).get("quant_method", "?")
        raise _fail(f"the base is stored quantized ({method}); merging into quantized weights drifts", f"base {base}",
                    "pass the full-precision base model as --base")
    return config


def check_gguf_architecture(config, base: str) -> str:
    """llama.cpp's architecture name for `config`, or an error naming the architecture."""
    archs = list(getattr(config, "architectures", None) or [type(config).__name__])
    arch = next((a for a in archs if a in GGUF_ARCHITECTURES), None)
    if arch is None:
        raise _fail(f"the GGUF writer cannot write architecture {', '.join(archs)} (model_type "
                    f"{config.model_type!r})", f"base {base}",
                    f"export it with `rag-de export merged` and convert that with llama.cpp's "
                    f"convert_hf_to_gguf.py; supported here: {', '.join(sorted(GGUF_ARCHITECTURES))}")
    rope = getattr(config, "rope_scaling", None) or {}
    rope_type = rope.get("rope_type", rope.get("type", "default")) if isinstance(rope, dict) else "default"
    if rope_type not in GGUF_ROPE_TYPES:
        raise _fail(f"rope scaling {rope_type!r} is not supported by the GGUF writer", f"base {base} config.json",
                    f"use `rag-de export merged`; supported: {', '.join(GGUF_ROPE_TYPES)}")
    return GGUF_ARCHITECTURES[arch]


def plan(config: ExportSource, out: Path, gguf: bool = False) -> ExportPlan:
    """Run every check in order (cheapest first); only the base's config.json is read, no weights."""
    from rag_de.base_model import resolve

    check_push_repo(config.push)
    adapter_config, base = read_adapter(config)
    base_path = resolve(base)
    model_config = read_base_config(base, base_path)
    if gguf:
        check_gguf_architecture(model_config, base)
    return ExportPlan(adapter=config.adapter, adapter_revision=config.adapter_revision, base=base, base_path=base_path,
                      model_config=model_config, adapter_config=adapter_config, out=out)
