"""Space routes: variables, secrets (write-only values), runtime; the local Hub stores Spaces, never runs them."""

from __future__ import annotations

from local_hub.auth import check_read, check_write
from local_hub.context import Ctx, require_dict
from local_hub.shapes import card_data, runtime_json
from local_hub.storage import Repo


def _space(ctx: Ctx, write: bool) -> Repo:
    repo = ctx.store.get_repo("space", f"{ctx.param('ns')}/{ctx.param('name')}")
    if write:
        return check_write(ctx.principal, repo, "change this Space")[1]
    return check_read(ctx.principal, repo)


def space_variables(ctx: Ctx, body: dict | None = None) -> dict:
    method = ctx.request.method
    repo = _space(ctx, write=method != "GET")
    if method == "POST":
        body = require_dict(body)
        ctx.store.set_space_setting(repo, "variable", body.get("key"), body.get("value"), body.get("description"))
    elif method == "DELETE":
        ctx.store.delete_space_setting(repo, "variable", require_dict(body).get("key"))
    return ctx.store.space_settings(repo, "variable")


def space_secrets(ctx: Ctx, body: dict | None = None) -> dict:
    """Secrets can be set and deleted; reading returns names and dates only, never values."""
    method = ctx.request.method
    repo = _space(ctx, write=True)
    if method == "POST":
        body = require_dict(body)
        ctx.store.set_space_setting(repo, "secret", body.get("key"), body.get("value"), body.get("description"))
        return {}
    if method == "DELETE":
        ctx.store.delete_space_setting(repo, "secret", require_dict(body).get("key"))
        return {}
    return {k: {"key": k, "description": v["description"], "updatedAt": v["updatedAt"]}
            for k, v in ctx.store.space_settings(repo, "secret").items()}


def space_runtime(ctx: Ctx, body: dict | None = None) -> dict:
    repo = _space(ctx, write=ctx.request.method != "GET")
    head = ctx.store.resolve(repo, "main")
    files = ctx.store.manifest(repo, head)
    return runtime_json(repo, files, card_data(ctx.store, files))
