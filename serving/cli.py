"""`rag-de export merged` and `rag-de export gguf`.

Only argparse and light project modules load here; torch, transformers, peft and gguf load inside the
commands.
"""

from __future__ import annotations

import argparse
import json

MERGED_HELP = """Merge a LoRA adapter into its base and save a plain transformers model for vLLM, TGI or
AutoModelForCausalLM: safetensors, tokenizer, chat template, generation_config.json with the EOS ids the
project stops on, export.json and a model card (base, adapter, dataset, the adapter's evaluation figures).
The base is loaded in full precision (bf16 on CUDA, fp32 on CPU), never 4-bit; before saving, the merged
model's logits are compared with base + adapter on contract prompts. --push uploads the folder in one commit."""

GGUF_HELP = """Merge a LoRA adapter into its base (full precision) and write one GGUF file for llama.cpp and
Ollama (llama family: Llama, Mistral, SmolLM2): llama.cpp tensor names, tokenizer and chat template in the
metadata, f32, f16 or q8_0 weights; plus an Ollama Modelfile next to it with the project's system prompt,
the chat template as TEMPLATE and the stop tokens. --push uploads file, Modelfile and card in one commit."""


def _run(kind: str, args: argparse.Namespace) -> int:
    """Bad input raises a `UserError` (`ExportError`, `ConfigError`, `UnsafeCardError`); `rag_de.cli.main`
    prints it as `rag-de export <kind>: error: ...` and exits 2."""
    from rag_de.config import load, overrides_from_args
    from serving.config import GGUFExportConfig, MergedExportConfig

    if kind == "merged":
        from serving.export import export_merged

        facts = export_merged(load(MergedExportConfig, args.config, overrides_from_args(args)))
    else:
        from serving.export import export_gguf

        facts = export_gguf(load(GGUFExportConfig, args.config, overrides_from_args(args)))
    diff = facts.get("max_abs_logit_diff")
    print(f"[export {kind}] wrote {facts['out']}" + (f" and {facts['modelfile']}" if facts.get("modelfile") else ""))
    if diff is not None:
        print(f"[export {kind}] merged vs base + adapter: max |logit diff| {diff:.2e} on {facts['verify_prompts']} "
              f"contract prompt(s) ({facts['merge_dtype']})")
    if facts.get("commit_url"):
        print(f"[export {kind}] pushed -> {facts['commit_url']}")
    print(json.dumps({k: facts[k] for k in ("seconds", "stop_tokens") if k in facts}, ensure_ascii=False))
    return 0


def register(commands, deploy) -> None:
    """Add `export merged` and `export gguf` to the top-level `rag-de` parser."""
    from rag_de.config import add_dataclass_arguments
    from serving.config import GGUFExportConfig, MergedExportConfig

    export = commands.add_parser(
        "export", help="serve the adapter elsewhere: a merged model (vLLM, TGI) or a GGUF (llama.cpp, Ollama)",
        description="Export a trained adapter for serving. Bad input (an adapter trained on another base, an "
        "architecture the GGUF writer cannot write, an output that exists) fails before any weight loads.")
    kinds = export.add_subparsers(dest="export_kind", metavar="KIND", required=True)
    for kind, cls, text, short in (
            ("merged", MergedExportConfig, MERGED_HELP, "adapter merged into the full-precision base (safetensors)"),
            ("gguf", GGUFExportConfig, GGUF_HELP, "one GGUF file (f32/f16/q8_0) + Ollama Modelfile")):
        sub = kinds.add_parser(kind, help=short, description=text,
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--config", metavar="YAML", help=f"{cls.__name__} YAML; flags below override it")
        add_dataclass_arguments(sub, cls, "export settings")
        sub.set_defaults(func=lambda args, kind=kind: _run(kind, args))
