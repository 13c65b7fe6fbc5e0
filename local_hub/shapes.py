"""JSON shapes of the Hub's answers: files and folders, last commits, repo info, Space runtime, card data.

Why apart from the routes: repo info, tree listings, paths-info and the Space routes all answer with
the same objects, and the field names follow what huggingface_hub's dataclasses (hf_api.py) read.
"""

from __future__ import annotations

import hashlib
from typing import Any

from local_hub.context import SPACE_APP_FILES, Ctx
from local_hub.storage import Commit, Entry, Repo, Storage, lfs_pointer, now_iso


def file_json(ctx: Ctx, repo: Repo, path: str, e: Entry, expand: bool) -> dict:
    out: dict[str, Any] = {"type": "file", "oid": e.oid, "size": e.size, "path": path}
    if e.lfs:
        out["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": len(lfs_pointer(e.sha256, e.size))}
    if expand:
        out["lastCommit"] = last_commit_json(ctx.store.commit_info(repo, e.last_commit))
    return out


def last_commit_json(c: Commit) -> dict:
    return {"id": c.oid, "title": c.title, "date": now_iso(c.created_at)}


def folder_oids(files: dict[str, Entry]) -> dict[str, str]:
    """A stable id per folder (sha1 over its files' paths and ids), like git's tree ids."""
    hashes: dict[str, Any] = {}
    for path in sorted(files):
        parts = path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            hashes.setdefault(folder, hashlib.sha1()).update(f"{path}\0{files[path].oid}\n".encode())
    return {k: h.hexdigest() for k, h in hashes.items()}


def folder_json(ctx: Ctx, repo: Repo, files: dict[str, Entry], folder: str, oid: str, expand: bool) -> dict:
    out: dict[str, Any] = {"type": "directory", "oid": oid, "path": folder}
    if expand:
        prefix = folder + "/"
        commits = {e.last_commit for p, e in files.items() if p.startswith(prefix)}
        newest = max((ctx.store.commit_info(repo, c) for c in commits), key=lambda c: c.created_at)
        out["lastCommit"] = last_commit_json(newest)
    return out


def card_data(store: Storage, files: dict[str, Entry]) -> dict | None:
    """YAML front matter of README.md, which the Hub returns as `cardData`."""
    entry = files.get("README.md")
    if entry is None or entry.size > 1024 * 1024:
        return None
    text = store.read_blob(entry.sha256).decode("utf-8", "replace")
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end < 0:
        return None
    import yaml  # light, and only needed here

    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def runtime_json(repo: Repo, files: dict[str, Entry], card: dict | None) -> dict:
    """This server stores Spaces but does not run them: the stage says so instead of pretending."""
    sdk = (card or {}).get("sdk") or repo.sdk or "gradio"
    app_file = (card or {}).get("app_file") or SPACE_APP_FILES.get(sdk, "app.py")
    stage = "STOPPED" if app_file in files else "NO_APP_FILE"
    return {
        "stage": stage,
        "hardware": {"current": None, "requested": "cpu-basic"},
        "storage": None,
        "gcTimeout": None,
        "replicas": {"current": 0, "requested": 1},
        "devMode": False,
        "domains": [],
        "sdk": sdk,
        "message": "The local hub stores Spaces but does not run them; run the app locally instead.",
    }


# Card fields the Hub turns into `key:value` tags (besides `tags` itself, `library_name`, `pipeline_tag`).
CARD_TAG_FIELDS = {
    "model": ("license", "language", "datasets:dataset", "base_model"),
    "dataset": ("license", "language", "task_categories", "task_ids", "size_categories", "multilinguality",
                "language_creators", "annotations_creators", "source_datasets"),
    "space": ("license",),
}


def repo_tags(repo: Repo, card: dict | None) -> list[str]:
    """The tags the Hub shows and filters on: the card's `tags`, its library and pipeline, and
    `key:value` tags from its metadata (`license:apache-2.0`, `language:de`, `dataset:org/x`, ...)."""
    card = card or {}
    out: list[str] = []

    def add(value) -> None:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value) not in out:
            out.append(str(value))

    for t in card.get("tags") or [] if isinstance(card.get("tags"), list) else []:
        add(t)
    for key in ("library_name", "pipeline_tag"):
        add(card.get(key))
    for field in CARD_TAG_FIELDS[repo.type]:
        key, _, prefix = field.partition(":")
        values = card.get(key)
        for v in values if isinstance(values, list) else [values]:
            if v is not None and isinstance(v, (str, int, float)):
                add(f"{prefix or key}:{v}")
    return out


def repo_info_json(ctx: Ctx, repo: Repo, oid: str, blobs: bool) -> dict:
    files = ctx.store.manifest(repo, oid)
    commit = ctx.store.commit_info(repo, oid)
    siblings = []
    for path in sorted(files):
        e = files[path]
        sib: dict[str, Any] = {"rfilename": path}
        if blobs:
            sib.update(size=e.size, blobId=e.oid)
            if e.lfs:
                sib["lfs"] = {"size": e.size, "sha256": e.sha256,
                              "pointerSize": len(lfs_pointer(e.sha256, e.size))}
        siblings.append(sib)
    card = card_data(ctx.store, files)
    tags = repo_tags(repo, card)
    info: dict[str, Any] = {
        "_id": f"{repo.id:024x}",
        "id": repo.repo_id,
        "author": repo.namespace,
        "sha": oid,
        "lastModified": now_iso(commit.created_at),
        "createdAt": now_iso(repo.created_at),
        "private": repo.private,
        "disabled": False,
        "gated": repo.gated or False,
        "likes": 0,
        "tags": tags,
        "siblings": siblings,
        "usedStorage": sum(e.size for e in files.values()),
    }
    if card is not None:
        info["cardData"] = card
    if repo.type == "model":
        info.update(modelId=repo.repo_id, downloads=0, library_name=(card or {}).get("library_name"),
                    pipeline_tag=(card or {}).get("pipeline_tag"))
    elif repo.type == "dataset":
        info.update(downloads=0, description=None)
    else:
        info.update(sdk=(card or {}).get("sdk") or repo.sdk, subdomain=repo.repo_id.replace("/", "-").lower(),
                    host=None, runtime=runtime_json(repo, files, card))
    return info
