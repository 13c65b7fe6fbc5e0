"""The two exports end to end: checks -> full-precision merge -> files -> card -> optional push in one commit."""

from __future__ import annotations

import json
import time
from pathlib import Path

from serving.config import GGUFExportConfig, MergedExportConfig
from serving.preflight import ExportPlan, check_out_path, plan


def _versions() -> dict:
    import importlib.metadata as md

    out = {}
    for name in ("torch", "transformers", "peft", "gguf"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def _facts(kind: str, p: ExportPlan, config, result, stops: list[str], eos: list[int]) -> dict:
    from model_cards.model_card import is_hub_id
    from rag_de.base_model import hub_id
    from serving.hub import adapter_revision

    return {
        "kind": kind, "repo_id": config.push or None, "name": config.push.split("/")[-1] if config.push else p.out.stem,
        "base": hub_id(p.base), "adapter": p.adapter if is_hub_id(p.adapter) else None,
        "adapter_revision": adapter_revision(p.adapter, p.adapter_revision),
        "architecture": (p.model_config.architectures or [type(p.model_config).__name__])[0],
        "merge_dtype": result.dtype, "device_type": result.device.split(":")[0],
        "max_abs_logit_diff": result.max_abs_logit_diff, "verify_prompts": result.probes,
        "eos_token_ids": eos, "stop_tokens": stops, "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
        "versions": _versions(),
    }


def export_merged(config: MergedExportConfig) -> dict:
    """Merged safetensors folder at `config.out` (+ push). Returns what export.json records."""
    from model_cards.export_card import render_export_card
    from serving.hub import adapter_card_facts, folder_files, push_files
    from serving.merge import load_and_merge, save_merged, stop_token_ids
    from serving.modelfile import stop_tokens

    started = time.perf_counter()
    p = plan(config, check_out_path(config.out))
    card_facts = adapter_card_facts(p.adapter, p.adapter_revision)
    result = load_and_merge(p, config)
    eos = stop_token_ids(result.model, result.tokenizer)
    facts = _facts("merged", p, config, result, stop_tokens(result.tokenizer, eos), eos)
    card = render_export_card("merged", facts, card_facts)
    started_save = time.perf_counter()
    save_merged(result, p.out, {"README.md": card, "export.json": json.dumps(facts, indent=2) + "\n"})
    facts["seconds"]["save"] = round(time.perf_counter() - started_save, 2)
    if config.push:
        facts["commit_url"] = push_files(config.push, folder_files(p.out), config.private,
                                         f"Merged export of {facts['adapter'] or 'a local adapter'} (rag-de export merged)")
    facts["seconds"]["total"] = round(time.perf_counter() - started, 2)
    facts["out"] = str(p.out)
    return facts


def export_gguf(config: GGUFExportConfig) -> dict:
    """GGUF file at `config.out`, Ollama Modelfile beside it (+ push of both with a card). Returns the facts."""
    from model_cards.export_card import render_export_card
    from rag_de.atomic import write_text
    from serving.gguf_export import write_gguf
    from serving.hub import adapter_card_facts, push_files
    from serving.merge import load_and_merge, stop_token_ids
    from serving.modelfile import render_modelfile, stop_tokens

    started = time.perf_counter()
    companions = ("Modelfile",) if config.modelfile else ()
    p = plan(config, check_out_path(config.out, ".gguf", companions), gguf=True)
    card_facts = adapter_card_facts(p.adapter, p.adapter_revision)
    result = load_and_merge(p, config)
    eos = stop_token_ids(result.model, result.tokenizer)
    facts = _facts("gguf", p, config, result, stop_tokens(result.tokenizer, eos), eos)
    started_write = time.perf_counter()
    facts.update(write_gguf(result.model, result.tokenizer, p.out, config.dtype, facts["name"], facts["base"]))
    facts["seconds"]["write"] = round(time.perf_counter() - started_write, 2)
    facts.update({"gguf_dtype": config.dtype, "gguf_file": p.out.name})
    files: dict[str, Path | bytes] = {p.out.name: p.out}
    if config.modelfile:
        modelfile = p.out.parent / "Modelfile"
        write_text(modelfile, render_modelfile(result.tokenizer, p.out.name, eos, config.temperature, config.num_ctx))
        files["Modelfile"] = modelfile
        facts["modelfile"] = str(modelfile)
    if config.push:
        card = render_export_card("gguf", facts, card_facts)
        files["README.md"] = card.encode("utf-8")
        facts["commit_url"] = push_files(config.push, files, config.private,
                                         f"GGUF ({config.dtype}) export of {facts['adapter'] or 'a local adapter'} "
                                         "(rag-de export gguf)")
    facts["seconds"]["total"] = round(time.perf_counter() - started, 2)
    facts["out"] = str(p.out)
    return facts
