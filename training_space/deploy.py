"""`rag-de deploy training-space`: the Gradio training Space on the Hub, in one commit.

The Space gets `app.py` (a two-line entry point into `training_space.app`), `requirements.txt`, the card
(`model_cards.space_card`) and the project packages the app runs (`rag_de`, `training_space`,
`dataset_builder` for the prompt contract, `model_cards` for the model card). Hardware and variables go
through the API; the write token is never written into a file: set HF_TOKEN as a Space secret.
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import CommitOperationAdd, HfApi

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("rag_de", "training_space", "dataset_builder", "model_cards")
REQUIREMENTS = Path(__file__).resolve().parent / "space_requirements.txt"
ENTRY_POINT = '''"""Space entry point: the training app of spaces-rag-de (see training_space/app.py)."""
from training_space.app import build_app

build_app().queue().launch()
'''
SKIP_DIRS = {"__pycache__", ".pytest_cache", "runs", "jobs"}


def package_files(root: Path = REPO_ROOT) -> list[tuple[str, Path]]:
    """(path in repo, local file) for every source/data file of the packages the app needs."""
    files = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            rel = path.relative_to(root)
            if path.is_file() and not SKIP_DIRS & set(rel.parts) and path.suffix not in (".pyc", ".pyo"):
                files.append((rel.as_posix(), path))
    return files


def deploy_training_space(space_id: str, hardware: str | None = None, private: bool = False,
                          dataset: str | None = None, base_model: str | None = None,
                          hub_model_id: str | None = None, train_config: str | None = None) -> str:
    from model_cards.space_card import render_space_card

    api = HfApi()
    api.create_repo(space_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True)
    card = render_space_card("training", space_id, models=[base_model] if base_model else None,
                             datasets=[dataset] if dataset else None,
                             suggested_hardware=hardware or None)
    ops = [CommitOperationAdd("app.py", ENTRY_POINT.encode()),
           CommitOperationAdd("requirements.txt", str(REQUIREMENTS)),
           CommitOperationAdd("README.md", card.encode())]
    ops += [CommitOperationAdd(rel, str(path)) for rel, path in package_files()]
    api.create_commit(space_id, repo_type="space", operations=ops,
                      commit_message="Deploy the spaces-rag-de training Space (app, requirements, card, packages)")
    variables = {"RAG_DE_DATASET": dataset, "RAG_DE_BASE_MODEL": base_model,
                 "RAG_DE_HUB_MODEL_ID": hub_model_id, "RAG_DE_TRAIN_CONFIG": train_config}
    for key, value in variables.items():
        if value:
            api.add_space_variable(space_id, key, value)
    if hardware:
        api.request_space_hardware(space_id, hardware)
    if not os.environ.get("HF_TOKEN"):
        print("note: add a write token as the Space secret HF_TOKEN so jobs can push the adapter")
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/spaces/{space_id}"
