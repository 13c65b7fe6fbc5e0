"""The card of a serving export (merged model or GGUF), rendered from data and `templates/export_card.md`.

The export names what it was made from (base, adapter and revision, dataset) and how it was checked; the
evaluation figures are the adapter's, copied from its card and labelled as measured on base + adapter, not
put into the export's `model-index` (the export was not re-evaluated).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from dataset_builder.contract import REFUSAL, SYSTEM_PROMPT
from model_cards.model_card import is_hub_id
from model_cards.safety import check_publishable

TEMPLATE = Path(__file__).resolve().parent / "templates" / "export_card.md"
TAGS = {"merged": ["spaces-rag-de", "rag", "german", "citations", "lora-merged", "text-generation-inference"],
        "gguf": ["spaces-rag-de", "rag", "german", "citations", "gguf", "llama.cpp", "ollama"]}


def _size(n: Any) -> str:
    if not isinstance(n, (int, float)):
        return "n/a"
    return f"{n / 2**20:.1f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def merge_check_text(facts: dict) -> str:
    diff, probes = facts.get("max_abs_logit_diff"), facts.get("verify_prompts", 0)
    if diff is None or not probes:
        return "not run (`--verify_prompts 0`)"
    return (f"max \\|logit difference\\| merged vs base + adapter = {diff:.2e} over every position of "
            f"{probes} contract prompt(s) ({facts.get('merge_dtype')}, {facts.get('device_type')})")


def render_export_card(kind: Literal["merged", "gguf"], facts: dict, adapter_card: dict) -> str:
    """README.md of an export repo. `facts`: what the export recorded (export.json); `adapter_card`: the
    adapter card's `datasets`, `license`, `eval_results` (name, value, dataset, split)."""
    from huggingface_hub import ModelCard, ModelCardData

    base = facts["base"]
    if not is_hub_id(base):
        raise ValueError(f"the base model {base!r} is not a Hub id; an export card must name the Hub model "
                         "(export an adapter trained on a Hub model)")
    adapter = facts.get("adapter") or ""
    adapter_label = f"[{adapter}](https://huggingface.co/{adapter})" if is_hub_id(adapter) else \
        "(a local adapter folder)"
    datasets = [d for d in adapter_card.get("datasets") or [] if is_hub_id(d)]
    evals = adapter_card.get("eval_results") or []
    card_data = ModelCardData(
        base_model=base, library_name="gguf" if kind == "gguf" else "transformers", tags=TAGS[kind],
        datasets=datasets or None, language="de", license=adapter_card.get("license"),
        pipeline_tag="text-generation", model_name=facts.get("repo_id") or facts.get("name"),
    )
    repo_id = facts.get("repo_id") or facts.get("name") or "NAME"
    card = ModelCard.from_template(
        card_data, template_path=str(TEMPLATE), kind=kind, model_title=repo_id.split("/")[-1], repo_id=repo_id,
        base_model=base, adapter_label=adapter_label, adapter_revision=facts.get("adapter_revision"),
        dataset_id=datasets[0] if datasets else None, merge_dtype=facts.get("merge_dtype", "n/a"),
        merge_check=merge_check_text(facts), refusal=REFUSAL, system_prompt=SYSTEM_PROMPT,
        stop_tokens=", ".join(f"`{t}`" for t in facts.get("stop_tokens") or []) or "the tokenizer's EOS",
        gguf_dtype=facts.get("gguf_dtype"), gguf_file=facts.get("gguf_file"), gguf_size=_size(facts.get("bytes")),
        gguf_tensor_types=", ".join(f"{n} {k}" for k, n in (facts.get("tensor_types") or {}).items()),
        tokenizer_model=facts.get("tokenizer_model"), tokenizer_pre=facts.get("tokenizer_pre"),
        eval_rows=[{"name": e["name"], "value": f"{e['value']:.4f}" if isinstance(e["value"], float) else e["value"]}
                   for e in evals],
        eval_dataset=next((e.get("dataset") for e in evals if e.get("dataset")), None),
        eval_split=next((e.get("split") for e in evals if e.get("split")), "test"),
    )
    return check_publishable(str(card), f"{kind} export card of {repo_id}")
