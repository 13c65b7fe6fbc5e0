"""Merge a LoRA adapter into its full-precision base, check the merge, save it as a plain model folder.

The base is loaded unquantized (bf16 on CUDA, fp32 on CPU): folding LoRA deltas into 4-bit weights and
re-quantizing is a known source of drift, so the merged model would no longer answer like the adapter.
Before the adapter is folded in, the logits of base + adapter on a few contract prompts are kept; after,
the merged model's logits on the same prompts are compared, and the max |difference| is recorded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from dataset_builder.contract import Chunk, render_prompt_text
from serving.config import ExportSource
from serving.preflight import ExportPlan

# Prompts for the merge check, in the contract's format: one answerable, one to refuse.
_CATALOG_CHUNKS = [
    Chunk(id="DB-101-0", title="DB-101 Datenbanken", source="DB-101.md",
          metadata={"module_code": "DB-101", "ects": 5},
          text="Das Modul Datenbanken umfasst 5 ECTS und schließt mit einer Klausur von 90 Minuten ab."),
    Chunk(id="ML-201-0", title="ML-201 Maschinelles Lernen", source="ML-201.md",
          metadata={"module_code": "ML-201", "ects": 10},
          text="Voraussetzung für Maschinelles Lernen ist das Modul Mathematische Grundlagen."),
]
PROBES = [
    ("Wie viele ECTS hat das Modul Datenbanken?", _CATALOG_CHUNKS),
    ("Wer leitet die Mensa?", _CATALOG_CHUNKS[::-1]),
]


@dataclass
class MergeResult:
    model: object
    tokenizer: object
    dtype: str
    device: str
    max_abs_logit_diff: float | None
    probes: int
    seconds: dict = field(default_factory=dict)


def probe_prompts(tokenizer, n: int) -> list[str]:
    return [render_prompt_text(tokenizer, q, chunks) for q, chunks in (PROBES * n)[:n]]


def prompt_logits(model, tokenizer, prompts: list[str]) -> list:
    """The logits at every position of each prompt, one prompt at a time (no padding to differ)."""
    import torch

    out = []
    with torch.inference_mode():
        for text in prompts:
            ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"].to(model.device)
            out.append(model(input_ids=ids).logits.float().cpu())
    return out


def stop_token_ids(model, tokenizer) -> list[int]:
    """The ids generation must stop on: the project's EOS helper (tokenizer EOS + generation config's)."""
    from rag_de.modeling import eos_ids

    return eos_ids(model, tokenizer)


def load_and_merge(plan: ExportPlan, config: ExportSource) -> MergeResult:
    """Base (full precision) + adapter -> merged model, with the logit check on `config.verify_prompts` prompts."""
    from evaluation.runner import load_tokenizer_for
    from rag_de.modeling import (LoadQuantizationConfig, default_device, load_adapter, load_causal_lm,
                                 resolve_compute_dtype)

    device = config.device or default_device()
    dtype = resolve_compute_dtype(config.merge_dtype, device)  # auto: bf16 on CUDA, fp32 on CPU
    seconds = {}
    started = time.perf_counter()
    tokenizer = load_tokenizer_for(SimpleNamespace(adapter=plan.adapter, adapter_revision=plan.adapter_revision,
                                                   base=plan.base))
    model = load_causal_lm(plan.base, LoadQuantizationConfig(kind="none"), dtype=dtype, device=device,
                           tokenizer=tokenizer)
    peft_model = load_adapter(model, plan.adapter, revision=plan.adapter_revision).eval()
    seconds["load"] = time.perf_counter() - started

    prompts = probe_prompts(tokenizer, config.verify_prompts) if config.verify_prompts > 0 else []
    before = prompt_logits(peft_model, tokenizer, prompts)
    started = time.perf_counter()
    merged = peft_model.merge_and_unload()
    seconds["merge"] = time.perf_counter() - started
    after = prompt_logits(merged, tokenizer, prompts)
    diff = max(((a - b).abs().max().item() for a, b in zip(before, after)), default=None)

    merged.eval()
    eos = stop_token_ids(merged, tokenizer)
    merged.generation_config.eos_token_id = eos[0] if len(eos) == 1 else eos
    merged.generation_config.pad_token_id = tokenizer.pad_token_id
    merged.config.pad_token_id = tokenizer.pad_token_id
    from rag_de.base_model import hub_id

    merged.config._name_or_path = hub_id(plan.base)
    return MergeResult(model=merged, tokenizer=tokenizer, dtype=dtype, device=device,
                       max_abs_logit_diff=diff, probes=len(prompts), seconds=seconds)


def save_merged(result: MergeResult, out: Path, extra_files: dict[str, str]) -> Path:
    """Write the model folder under a temp name beside `out`, then rename it: no half-written export."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        result.model.save_pretrained(tmp)
        result.tokenizer.save_pretrained(tmp)
        from rag_de.atomic import write_text

        for name, text in extra_files.items():
            write_text(tmp / name, text)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out
