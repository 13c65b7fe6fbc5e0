"""README.md of the demo and training Spaces: front matter (`SpaceCardData`) plus a usage body.

The variable tables come from data: the demo's from `demo_space.settings.DemoConfig` (each field names
its environment variable), the training Space's from `TRAINING_VARIABLES` unless the caller passes its
own `variables=[{name, help, default}, ...]`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from model_cards.safety import check_publishable
from rag_de.base_model import EMBEDDED_MODEL_ID

TEMPLATES = Path(__file__).resolve().parent / "templates"
HF_TOKEN_SECRET = {"name": "HF_TOKEN", "help": "Hub token; read access to private repos (demo), write access "
                   "to push the adapter (training)"}
DEFAULTS: dict[str, dict[str, Any]] = {
    "demo": {"title": "spaces-rag-de demo", "emoji": "📚", "app_file": "app.py", "suggested_hardware": "cpu-upgrade",
             "short_description": "German RAG chatbot that cites its sources and refuses when unsure"},
    "training": {"title": "spaces-rag-de training", "emoji": "🏋️", "app_file": "app.py",
                 "suggested_hardware": "a10g-small",
                 "short_description": "QLoRA fine-tuning of a citing, refusing German RAG adapter"},
}
TRAINING_VARIABLES = [
    {"name": "RAG_DE_BASE_MODEL", "help": "base model (Hub id)", "default": f"`{EMBEDDED_MODEL_ID}`"},
    {"name": "RAG_DE_DATASET", "help": "training dataset (Hub id)", "default": "`org/spaces-rag-de`"},
    {"name": "RAG_DE_HUB_MODEL_ID", "help": "model repo the adapter is pushed to", "default": "(required)"},
    {"name": "RAG_DE_TRAIN_CONFIG", "help": "training preset YAML shipped with the app", "default": "GPU preset"},
]


def gradio_version() -> str:
    from importlib.metadata import version

    return version("gradio")


def demo_variables() -> list[dict[str, str]]:
    """One row per `DemoConfig` field: its environment variable, help text and default."""
    from demo_space.settings import DemoConfig

    rows = []
    for f in dataclasses.fields(DemoConfig):
        env = f.metadata.get("env")
        if not env:
            continue
        default = f.default if f.default is not dataclasses.MISSING else None
        rows.append({"name": env, "help": f.metadata.get("help", ""),
                     "default": "unset" if default is None else f"`{default}`"})
    return rows


def render_space_card(kind: Literal["demo", "training"], space_id: str, **fields: Any) -> str:
    """The Space's README.md. `fields` override front matter keys (title, emoji, sdk_version, app_file,
    models, datasets, suggested_hardware, license, short_description) and the `variables`/`secrets` rows."""
    from huggingface_hub import SpaceCard, SpaceCardData

    if kind not in DEFAULTS:
        raise ValueError(f"unknown Space kind {kind!r}; use 'demo' or 'training'")
    values = {**DEFAULTS[kind], **{k: v for k, v in fields.items() if v is not None}}
    models = list(values.pop("models", None) or [])
    datasets = list(values.pop("datasets", None) or [])
    variables = values.pop("variables", None) or (demo_variables() if kind == "demo" else TRAINING_VARIABLES)
    secrets = values.pop("secrets", None) or [HF_TOKEN_SECRET]
    title = values.pop("title")
    card_data = SpaceCardData(
        title=title, sdk="gradio", sdk_version=values.pop("sdk_version", None) or gradio_version(),
        app_file=values.pop("app_file"), license=values.pop("license", "apache-2.0"),
        models=models or None, datasets=datasets or None,
        emoji=values.pop("emoji"), colorFrom=values.pop("colorFrom", "blue"), colorTo=values.pop("colorTo", "green"),
        pinned=values.pop("pinned", False), suggested_hardware=values["suggested_hardware"],
        short_description=values.pop("short_description"), tags=values.pop("tags", ["rag", "german", "peft"]),
    )
    card = SpaceCard.from_template(
        card_data, template_path=str(TEMPLATES / f"space_card_{kind}.md"), title=title, models=models,
        datasets=datasets, variables=variables, secrets=secrets, suggested_hardware=values["suggested_hardware"],
        space_id=space_id,
    )
    return check_publishable(str(card), f"Space card of {space_id}")
