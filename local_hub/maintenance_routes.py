"""Repo maintenance: super-squash a branch, duplicate a repo (`duplicate_repo`, with its history), list and
permanently delete LFS objects (`list_lfs_files`, `permanently_delete_lfs_files`). Writers only.
"""

from __future__ import annotations

from local_hub import errors
from local_hub.auth import check_write_namespace
from local_hub.context import Ctx, require_dict
from local_hub.storage import (
    SHA256_RE, git_blob_oid, lfs_pointer, now_iso, validate_name,
)

# Keys of a duplicate request this server applies; Space hardware settings are refused (it runs no Spaces).
DUPLICATE_KEYS = {"repository", "visibility", "private", "secrets", "variables", "hardware"}


def super_squash(ctx: Ctx, body: dict | None) -> dict:
    repo = ctx.writable_repo("squash the history of this repo")
    message = (body or {}).get("message") or f"Super-squash branch '{ctx.param('rev')}'"
    if not isinstance(message, str):
        raise errors.bad_request("'message' must be a string")
    oid = ctx.store.super_squash(repo, ctx.param("rev"), message, ctx.principal.user)
    return {"commitId": oid}


def duplicate(ctx: Ctx, body: dict) -> dict:
    body = require_dict(body)
    source = ctx.readable_repo()
    unknown = sorted(set(body) - DUPLICATE_KEYS)
    if unknown:
        raise errors.bad_request(f"The local hub cannot apply {', '.join(unknown)} when duplicating a repo")
    if body.get("hardware") not in (None, "cpu-basic"):
        raise errors.bad_request("The local hub runs no Spaces: only hardware 'cpu-basic' can be requested")
    target = body.get("repository")
    if not isinstance(target, str) or target.count("/") != 1:
        raise errors.bad_request("'repository' (namespace/name of the copy) is required")
    namespace, name = target.split("/")
    validate_name(namespace, "namespace")
    validate_name(name, "repo name")
    check_write_namespace(ctx.principal, namespace, f"create a {source.type}")
    if "visibility" in body:
        private = body["visibility"] != "public"
    else:
        private = bool(body.get("private", source.private))
    copy = ctx.store.duplicate_repo(source, namespace, name, private=private)
    if source.type == "space":
        for key, v in ctx.store.space_settings(source, "variable").items():
            ctx.store.set_space_setting(copy, "variable", key, v["value"], v["description"])
        for kind, field in (("variable", "variables"), ("secret", "secrets")):
            for item in body.get(field) or []:
                if not isinstance(item, dict):
                    raise errors.bad_request(f"'{field}' must be a list of {{key, value, description}}")
                ctx.store.set_space_setting(copy, kind, item.get("key"), item.get("value"), item.get("description"))
    return {"url": ctx.repo_url(copy), "filesCopyPending": False}


def list_lfs_files(ctx: Ctx) -> list:
    repo = ctx.writable_repo("list the LFS files of this repo")
    return [{"fileOid": f["sha256"], "oid": git_blob_oid(lfs_pointer(f["sha256"], f["size"])),
             "filename": f["filename"], "pushedAt": now_iso(f["pushed_at"]), "ref": f["ref"], "size": f["size"]}
            for f in ctx.store.lfs_files(repo)]


def delete_lfs_files(ctx: Ctx, body: dict) -> dict:
    repo = ctx.writable_repo("delete LFS files of this repo")
    deletions = require_dict(require_dict(body).get("deletions"))
    shas = deletions.get("sha")
    if not isinstance(shas, list) or not all(isinstance(s, str) and SHA256_RE.match(s) for s in shas):
        raise errors.bad_request("'deletions.sha' must be a list of sha256 hex digests (fileOid of list_lfs_files)")
    ctx.store.lfs_delete(repo, shas)
    return {}
