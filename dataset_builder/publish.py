"""`rag-de publish`: the built Parquet files and the dataset card, pushed to the Hub in one commit.

One commit (create_commit with every file, plus deletions of data files a previous push left behind)
means readers see either the old dataset or the new one, never half an upload.
"""

from __future__ import annotations

from pathlib import Path

from dataset_builder.schema import SPLITS


def hub_path(split: str) -> str:
    return f"data/{split}-00000-of-00001.parquet"


def publish(data_dir: str | Path, repo_id: str, private: bool = False, revision: str | None = None,
            message: str | None = None) -> str:
    """Push `data_dir` to the dataset repo `repo_id`; returns the commit URL. Token: env / HF login."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token

    from model_cards.dataset_card import render_dataset_card

    data_dir = Path(data_dir)
    files = {s: data_dir / f"{s}.parquet" for s in SPLITS if (data_dir / f"{s}.parquet").exists()}
    if not files:
        raise FileNotFoundError(f"{data_dir}: no train/validation/test.parquet; run `rag-de build --out {data_dir}` first")
    if get_token() is None:
        raise PermissionError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (write access needed)")
    card = render_dataset_card(data_dir, repo_id)
    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    if revision:
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)
    wanted = {hub_path(s) for s in files}
    stale = [f for f in api.list_repo_files(repo_id, repo_type="dataset", revision=revision)
             if f.startswith("data/") and f not in wanted]
    operations = [CommitOperationAdd(hub_path(s), str(p)) for s, p in files.items()]
    operations.append(CommitOperationAdd("README.md", card.encode("utf-8")))
    operations += [CommitOperationDelete(f) for f in stale]
    info = api.create_commit(repo_id, operations, repo_type="dataset", revision=revision,
                             commit_message=message or f"Dataset from rag-de build ({', '.join(files)})")
    return info.commit_url


def run_publish_cli(args) -> int:
    try:
        url = publish(args.data, args.repo, private=args.private, revision=args.revision, message=args.message)
    except (FileNotFoundError, PermissionError, ValueError) as exc:
        from rag_de.errors import report

        return report("publish", exc)
    print(f"[publish] {args.repo}: {url}")
    return 0
