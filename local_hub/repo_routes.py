"""Repo routes: health and whoami, create / delete / move / settings, listings, repo info, refs and commits.

Shapes follow huggingface_hub 2.x's hf_api.py: every route here exists because a client method calls it.
"""

from __future__ import annotations

import hashlib

from starlette.responses import JSONResponse, Response

from local_hub import errors
from local_hub.auth import check_write, check_write_namespace
from local_hub.context import SPACE_APP_FILES, Ctx, paged, require_dict, resolve_commit, truthy
from local_hub.shapes import repo_info_json
from local_hub.storage import REPO_TYPES, Repo, now_iso


def health(ctx: Ctx) -> dict:
    return {"status": "ok"}


def whoami(ctx: Ctx) -> dict:
    p = ctx.principal
    if p is None:
        raise errors.unauthorized("Invalid user token: send Authorization: Bearer <token>")
    return {
        "type": "user",
        "id": hashlib.sha1(p.user.encode()).hexdigest()[:24],
        "name": p.user,
        "fullname": p.user,
        "email": None,
        "emailVerified": False,
        "canPay": False,
        "isPro": False,
        "periodEnd": None,
        "avatarUrl": "",
        "orgs": [{"type": "org", "id": hashlib.sha1(o.encode()).hexdigest()[:24], "name": o, "fullname": o,
                  "roleInOrg": "write", "isEnterprise": False} for o in p.orgs],
        "auth": {"type": "access_token", "accessToken": {
            "displayName": p.token_name, "role": p.role, "createdAt": now_iso(p.token_created_at)}},
    }


def validate_yaml(ctx: Ctx, body: dict) -> Response:
    """Check a README's YAML front matter before a commit (huggingface_hub calls this for README.md)."""
    content = require_dict(body).get("content")
    if not isinstance(content, str):
        raise errors.bad_request("'content' must be a string")
    problems = []
    if content.startswith("---"):
        end = content.find("\n---", 3)
        if end < 0:
            problems.append("The YAML front matter is not closed by a '---' line")
        else:
            import yaml

            try:
                data = yaml.safe_load(content[3:end])
                if data is not None and not isinstance(data, dict):
                    problems.append("The YAML front matter must be a mapping")
            except yaml.YAMLError as e:
                problems.append(f"Invalid YAML front matter: {e}")
    answer = {"errors": [{"message": m} for m in problems], "warnings": []}
    return JSONResponse(answer, status_code=400 if problems else 200)


def _repo_type_from_body(body: dict) -> str:
    rtype = body.get("type") or "model"
    if rtype not in REPO_TYPES:
        raise errors.bad_request(f"Invalid repo type {rtype!r}: use one of {', '.join(REPO_TYPES)}")
    return rtype


def create_repo(ctx: Ctx, body: dict) -> Response:
    body = require_dict(body)
    rtype = _repo_type_from_body(body)
    name = body.get("name")
    if not isinstance(name, str) or not name:
        raise errors.bad_request("'name' is required")
    p = ctx.principal
    namespace = body.get("organization") or (p.user if p else None)
    if namespace is None:
        raise errors.unauthorized("You must be authenticated to create a repo")
    check_write_namespace(p, namespace, f"create a {rtype}")
    if body.get("visibility") is not None:
        private = body["visibility"] != "public"
    else:
        private = bool(body.get("private", False))
    sdk = body.get("sdk")
    if rtype == "space" and sdk not in SPACE_APP_FILES:
        raise errors.bad_request(f"Invalid 'sdk' {sdk!r} for a Space: use one of {', '.join(SPACE_APP_FILES)}")
    existing = ctx.store.get_repo(rtype, f"{namespace}/{name}")
    if existing is not None:
        return JSONResponse({"error": f"You already created this {rtype} repo", "url": ctx.repo_url(existing)},
                            status_code=409, headers={"X-Error-Message": f"You already created this {rtype} repo"})
    repo = ctx.store.create_repo(rtype, namespace, name, private=private, author=p.user, sdk=sdk)
    if rtype == "space":
        for kind, key in (("variable", "variables"), ("secret", "secrets")):
            for item in body.get(key) or []:
                if not isinstance(item, dict):
                    raise errors.bad_request(f"'{key}' must be a list of {{key, value, description}}")
                ctx.store.set_space_setting(repo, kind, item.get("key"), item.get("value"), item.get("description"))
    return JSONResponse({"url": ctx.repo_url(repo), "name": repo.repo_id, "id": f"{repo.id:024x}"})


def _repo_by_body(ctx: Ctx, body: dict) -> Repo | None:
    rtype = _repo_type_from_body(body)
    name, org = body.get("name"), body.get("organization") or (ctx.principal.user if ctx.principal else None)
    if not isinstance(name, str) or org is None:
        raise errors.bad_request("'name' (and 'organization' or a token) are required")
    return ctx.store.get_repo(rtype, f"{org}/{name}")


def delete_repo(ctx: Ctx, body: dict) -> dict:
    repo = check_write(ctx.principal, _repo_by_body(ctx, require_dict(body)), "delete this repo")[1]
    ctx.store.delete_repo(repo)
    return {}


def move_repo(ctx: Ctx, body: dict) -> dict:
    body = require_dict(body)
    rtype = _repo_type_from_body(body)
    src, dst = body.get("fromRepo"), body.get("toRepo")
    if not isinstance(src, str) or not isinstance(dst, str) or dst.count("/") != 1:
        raise errors.bad_request("'fromRepo' and 'toRepo' (namespace/name) are required")
    repo = check_write(ctx.principal, ctx.store.get_repo(rtype, src), "move this repo")[1]
    namespace, name = dst.split("/")
    check_write_namespace(ctx.principal, namespace, f"move a {rtype} into this namespace")
    ctx.store.move_repo(repo, namespace, name)
    return {}


SETTINGS_KEYS = {"gated", "private", "visibility"}  # what update_repo_settings may send that this hub applies


def update_settings(ctx: Ctx, body: dict) -> dict:
    body = require_dict(body)
    repo = ctx.writable_repo("change the settings of this repo")
    unknown = sorted(set(body) - SETTINGS_KEYS)
    if unknown:
        raise errors.bad_request(f"The local hub has no repo setting {', '.join(unknown)}: "
                                 f"use {', '.join(sorted(SETTINGS_KEYS))}")
    if "gated" in body:
        gated = body["gated"]
        if gated not in (False, "auto", "manual"):
            raise errors.bad_request(f"gated must be 'auto', 'manual' or false, not {gated!r}")
        ctx.store.set_gated(repo, gated or None)
    if "visibility" in body:
        if body["visibility"] not in ("public", "private"):
            raise errors.bad_request("visibility must be 'public' or 'private' (the local hub has no 'protected')")
        ctx.store.set_private(repo, body["visibility"] != "public")
    elif "private" in body:
        ctx.store.set_private(repo, bool(body["private"]))
    return {}


def repo_info(ctx: Ctx) -> dict:
    repo = ctx.readable_repo()
    revision = ctx.param("rev") if "rev" in ctx.request.path_params else "main"
    oid = resolve_commit(ctx, repo, revision)
    return repo_info_json(ctx, repo, oid, blobs=truthy(ctx.request.query_params.get("blobs")))


def auth_check(ctx: Ctx) -> dict:
    if ctx.request.url.path.endswith("/write"):
        ctx.writable_repo("write to this repo")
    else:
        ctx.readable_repo()
    return {}


# ---------------------------------------------------------------------------------------------- refs and commits
def list_commits(ctx: Ctx) -> Response:
    repo = ctx.readable_repo()
    oid = resolve_commit(ctx, repo, ctx.param("rev"))
    formatted = "formatted" in ctx.request.query_params.getlist("expand[]")
    out = []
    for c in ctx.store.history(repo, oid):
        item = {"id": c.oid, "title": c.title, "message": c.message, "date": now_iso(c.created_at),
                "authors": [{"user": c.author, "avatar": None}]}
        if formatted:
            item["formatted"] = {"title": c.title, "message": c.message}
        out.append(item)
    return paged(ctx, out, ctx.config.commits_page_size)


def list_refs(ctx: Ctx) -> dict:
    repo = ctx.readable_repo()
    refs = ctx.store.refs(repo)
    out = {
        "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": t} for n, t in refs["branch"].items()],
        "converts": [],
        "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": t} for n, t in refs["tag"].items()],
    }
    if truthy(ctx.request.query_params.get("include_prs")):
        out["pullRequests"] = [{"name": f"refs/pr/{n}", "ref": f"refs/pr/{n}", "targetCommit": t}
                               for n, t in sorted(refs["pr"].items(), key=lambda kv: int(kv[0]))]
    return out


def create_branch(ctx: Ctx, body: dict) -> dict:
    repo = ctx.writable_repo("create a branch")
    start = (body or {}).get("startingPoint") or "main"
    ctx.store.create_ref(repo, "branch", ctx.param("branch"), resolve_commit(ctx, repo, start))
    return {}


def delete_branch(ctx: Ctx) -> dict:
    repo = ctx.writable_repo("delete a branch")
    ctx.store.delete_ref(repo, "branch", ctx.param("branch"))
    return {}


def create_tag(ctx: Ctx, body: dict) -> dict:
    repo = ctx.writable_repo("create a tag")
    tag = require_dict(body).get("tag")
    if not isinstance(tag, str):
        raise errors.bad_request("'tag' is required")
    ctx.store.create_ref(repo, "tag", tag, resolve_commit(ctx, repo, ctx.param("rev")))
    return {}


def delete_tag(ctx: Ctx) -> dict:
    repo = ctx.writable_repo("delete a tag")
    ctx.store.delete_ref(repo, "tag", ctx.param("rev"))
    return {}
