"""Repo maintenance: super-squash a branch, duplicate a repo (`duplicate_space`, `duplicate_repo`), list and
permanently delete LFS objects (`list_lfs_files`, `permanently_delete_lfs_files`). Writers only.
"""

from __future__ import annotations

from local_hub import errors
from local_hub.auth import check_write_namespace
from local_hub.context import Ctx, require_dict
from local_hub.storage import (
    DEFAULT_BRANCH, SHA256_RE, Operation, git_blob_oid, lfs_pointer, now_iso, validate_name,
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
    principal = check_write_namespace(ctx.principal, namespace, f"create a {source.type}")
    if "visibility" in body:
        private = body["visibility"] != "public"
    else:
        private = bool(body.get("private", source.private))
    if ctx.store.find_repo(source.type, target) or ctx.store.get_repo(source.type, target):
        raise errors.HubError(409, f"You already created this {source.type} repo: {target}")
    files = ctx.store.manifest(source, ctx.store.resolve(source, DEFAULT_BRANCH))
    copy = ctx.store.create_repo(source.type, namespace, name, private=private, author=principal.user,
                                 sdk=source.sdk)
    initial = ctx.store.manifest(copy, ctx.store.resolve(copy, DEFAULT_BRANCH))
    ops = [Operation("delete_file", p) for p in initial if p not in files]
    ops += [Operation("add", p, e.sha256, e.size, e.lfs, e.oid) for p, e in sorted(files.items())]
    for e in files.values():
        if e.lfs:
            ctx.store.lfs_register(copy, e.sha256, e.size)
    ctx.store.commit(copy, DEFAULT_BRANCH, ops, title=f"Duplicated from {source.repo_id}", message="",
                     author=principal.user)
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
