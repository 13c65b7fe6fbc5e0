"""Per-request plumbing shared by the route modules: who calls, which repo, JSON bodies, paging, errors.

Routing runs on the *raw* (still percent-encoded) path, because the clients quote revisions with
`safe=""`: a branch `a/b` arrives as `a%2Fb` and must stay one path segment; `Ctx.param` decodes it.
Blocking work (SQLite, fsync) runs in Starlette's thread pool so the event loop keeps serving.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import quote, unquote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from local_hub import errors
from local_hub.auth import Principal, authenticate, can_read, check_contribute, check_read, check_write
from local_hub.errors import HubError
from local_hub.settings import LocalHubConfig
from local_hub.storage import (
    REPO_TYPES, Conflict, EntryNotFound, NotFound, ParentMismatch, Repo, RevisionNotFound, Storage, StorageError,
    ref_key,
)

URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
PREFIX_TYPE = {"": "model", "datasets": "dataset", "spaces": "space"}
SPACE_APP_FILES = {"gradio": "app.py", "streamlit": "app.py", "docker": "Dockerfile", "static": "index.html"}


# ---------------------------------------------------------------------------------------------- plumbing
@dataclass
class Ctx:
    """What every handler needs: storage, settings, the caller and helpers bound to this request."""

    request: Request
    store: Storage
    config: LocalHubConfig
    principal: Principal | None

    def param(self, name: str) -> str:
        return unquote(self.request.path_params[name])

    @property
    def base_url(self) -> str:
        return str(self.request.base_url).rstrip("/")

    def repo_type(self) -> str:
        params = self.request.path_params
        if "rtype" in params:
            rtype = unquote(params["rtype"])
        else:
            prefix = unquote(params.get("prefix", ""))
            if prefix not in PREFIX_TYPE:
                raise errors.bad_request(f"Invalid repo type prefix {prefix!r}: use datasets/ or spaces/")
            rtype = PREFIX_TYPE[prefix]
        if rtype not in REPO_TYPES:
            raise errors.bad_request(f"Invalid repo type {rtype!r}: use one of models, datasets, spaces")
        return rtype

    def repo(self) -> Repo | None:
        """The repo the path names; for GET/HEAD under another case or a moved repo's old name, a 307 to
        its current name (only to a caller who may see it: private names do not leak)."""
        rtype, repo_id = self.repo_type(), f"{self.param('ns')}/{self.param('name')}"
        repo = self.store.get_repo(rtype, repo_id)
        if repo is None and self.request.method in ("GET", "HEAD"):
            other = self.store.find_repo(rtype, repo_id)
            if other is not None and can_read(self.principal, other):
                raise errors.redirect(self.moved_url(other))
        return repo

    def moved_url(self, repo: Repo) -> str:
        """This request's path and query with the repo's current `namespace/name` (a relative redirect)."""
        raw = f"/{self.request.path_params['ns']}/{self.request.path_params['name']}"
        url = self.request.url
        path = url.path.replace(raw, f"/{quote(repo.namespace, safe='')}/{quote(repo.name, safe='')}", 1)
        return path + (f"?{url.query}" if url.query else "")

    def readable_repo(self) -> Repo:
        return check_read(self.principal, self.repo())

    def writable_repo(self, what: str) -> Repo:
        return check_write(self.principal, self.repo(), what)[1]

    def committable_repo(self, revision: str, create_pr: bool) -> Repo:
        """Who may commit where: a new PR (`create_pr`) needs read access and a write token; a PR's ref
        `refs/pr/N` its author or a writer of the repo, while the PR is open; a branch a writer."""
        if create_pr:
            return check_contribute(self.principal, self.repo(), "open a pull request")[1]
        kind, num = ref_key(revision)
        if kind != "pr":
            return self.writable_repo("create a commit in this repo")
        principal, repo = check_contribute(self.principal, self.repo(), "push to this pull request")
        try:
            d = self.store.get_discussion(repo, int(num))
        except NotFound:
            raise errors.revision_not_found(f"Invalid rev id: {revision}") from None
        if d.author != principal.user:
            check_write(principal, repo, "push to another user's pull request")
        if d.status not in ("open", "draft"):
            raise errors.forbidden(f"Pull request #{num} is {d.status}: reopen it before pushing to it")
        return repo

    def repo_url(self, repo: Repo) -> str:
        return f"{self.base_url}/{URL_PREFIX[repo.type]}{repo.repo_id}"


def app_state(request: Request) -> tuple[Storage, LocalHubConfig]:
    return request.app.state.store, request.app.state.config


async def read_json(request: Request, limit: int) -> Any:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HubError(413, f"Request body larger than {limit} bytes")
    if not body:
        return {}
    try:
        return json.loads(body)
    except ValueError as e:
        raise errors.bad_request(f"Request body is not valid JSON: {e}") from None


def map_storage_error(e: StorageError, headers: dict | None = None) -> HubError:
    if isinstance(e, RevisionNotFound):
        return errors.revision_not_found(str(e), headers)
    if isinstance(e, EntryNotFound):
        return errors.entry_not_found(str(e), headers)
    if isinstance(e, NotFound):
        return HubError(404, str(e))
    if isinstance(e, Conflict):
        return HubError(409, str(e))
    if isinstance(e, ParentMismatch):
        return HubError(412, str(e))
    return errors.bad_request(str(e))


def endpoint(fn: Callable[..., Response | dict | list], *, json_body: bool = False) -> Callable:
    """Wrap a blocking handler `fn(ctx, body)`: authenticate, read JSON, run in the thread pool, map errors."""

    async def handler(request: Request) -> Response:
        store, config = app_state(request)
        try:
            body = await read_json(request, config.max_json_body_bytes) if json_body else None

            def run():
                ctx = Ctx(request, store, config, authenticate(store, request.headers.get("authorization")))
                return fn(ctx, body) if json_body else fn(ctx)

            result = await run_in_threadpool(run)
        except HubError as e:
            return e.response()
        except StorageError as e:
            return map_storage_error(e).response()
        return result if isinstance(result, Response) else JSONResponse(result)

    return handler


def resolve_commit(ctx: Ctx, repo: Repo, revision: str) -> str:
    try:
        return ctx.store.resolve(repo, revision)
    except RevisionNotFound as e:
        raise errors.revision_not_found(str(e)) from None


def paged(ctx: Ctx, items: list, page_size: int) -> Response:
    """One page plus a GitHub-style `Link: <...>; rel="next"` header, which the clients follow."""
    q = ctx.request.query_params
    try:
        limit = min(int(q.get("limit", page_size)), page_size)
        start = int(base64.urlsafe_b64decode(q["cursor"].encode()).decode()) if "cursor" in q else 0
    except (ValueError, binascii.Error):
        raise errors.bad_request("Invalid cursor or limit") from None
    if limit < 1 or start < 0:
        raise errors.bad_request("Invalid cursor or limit")
    page = items[start:start + limit]
    headers = {}
    if start + limit < len(items):
        params = [(k, v) for k, v in q.multi_items() if k != "cursor"]
        params.append(("cursor", base64.urlsafe_b64encode(str(start + limit).encode()).decode()))
        url = str(ctx.request.url.replace(query=urlencode(params)))
        headers["Link"] = f'<{url}>; rel="next"'
    return JSONResponse(page, headers=headers)


def truthy(value: str | None) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


def require_dict(body: Any) -> dict:
    if not isinstance(body, dict):
        raise errors.bad_request("Request body must be a JSON object")
    return body
