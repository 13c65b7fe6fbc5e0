"""Hub side of an export: what the adapter's card says, and the upload of the export in one commit.

One commit (`create_commit` with every file) means a reader of the repo sees the old export or the new one,
never weights without their tokenizer or card.
"""

from __future__ import annotations

from pathlib import Path

from serving.config import ExportError


def adapter_card_facts(adapter: str, revision: str | None = None) -> dict:
    """Datasets, license and evaluation results from the adapter's README.md (empty when it has none)."""
    from huggingface_hub import ModelCard

    try:
        if Path(adapter).is_dir():
            readme = Path(adapter) / "README.md"
            card = ModelCard.load(readme) if readme.exists() else None
        else:
            card = ModelCard.load(adapter, revision=revision) if revision else ModelCard.load(adapter)
    except Exception:  # noqa: BLE001 - no card (404), or a card without metadata: no figures to copy
        card = None
    if card is None:
        return {}
    data = card.data
    evals = [{"name": r.metric_name or r.metric_type, "value": r.metric_value, "dataset": r.dataset_name,
              "split": r.dataset_split} for r in (data.eval_results or [])]
    datasets = data.datasets if isinstance(data.datasets, list) else [data.datasets] if data.datasets else []
    return {"datasets": datasets, "license": data.license, "eval_results": evals}


def adapter_revision(adapter: str, revision: str | None) -> str:
    """The commit the export was made from (Hub), or a hash of the local adapter's weights."""
    if Path(adapter).is_dir():
        from evaluation.runner import adapter_fingerprint

        return adapter_fingerprint(adapter, revision)
    from huggingface_hub import HfApi

    return HfApi().model_info(adapter, revision=revision).sha or (revision or "main")


def push_files(repo_id: str, files: dict[str, Path | bytes], private: bool, message: str) -> str:
    """Create `repo_id` if needed and upload `files` ({path in repo: local file or bytes}) in one commit."""
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        operations = [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(src) if isinstance(src, Path) else src)
                      for name, src in files.items()]
        info = api.create_commit(repo_id, operations, commit_message=message)
    except HfHubHTTPError as exc:
        raise ExportError(f"upload failed ({exc}), --push {repo_id}, check HF_TOKEN / `hf auth login` "
                          "(a write token for that namespace) and HF_ENDPOINT") from None
    return getattr(info, "commit_url", None) or str(info)


def folder_files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()}
