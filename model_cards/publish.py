"""Write a card locally (atomically) and push it to the Hub as README.md in one commit."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from model_cards.safety import check_publishable
from rag_de.atomic import write_text


def write_card(path: Path, text: str) -> Path:
    check_publishable(text, f"card for {path.name}")
    return write_text(path, text)


def push_card(text: str, repo_id: str, repo_type: Literal["model", "dataset", "space"],
              revision: str | None = None) -> str:
    """Upload `text` as README.md of `repo_id` (token from the environment / HF login)."""
    from huggingface_hub import HfApi

    check_publishable(text, f"card for {repo_id}")
    info = HfApi().upload_file(
        path_or_fileobj=text.encode("utf-8"), path_in_repo="README.md", repo_id=repo_id,
        repo_type=repo_type, revision=revision, commit_message="Update card (rag-de card)",
    )
    return getattr(info, "commit_url", None) or str(info)
