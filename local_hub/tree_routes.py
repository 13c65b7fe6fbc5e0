"""Reading a revision's files: the tree listing, paths-info, and `resolve` (file download).

ETag, X-Repo-Commit and the LFS headers are what file_download.py and HfFileSystem rely on.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from local_hub import errors
from local_hub.auth import authenticate
from local_hub.context import Ctx, app_state, map_storage_error, paged, resolve_commit, truthy
from local_hub.errors import HubError
from local_hub.shapes import file_json, folder_json, folder_oids
from local_hub.storage import BadRequest, Repo, StorageError, validate_path


def list_tree(ctx: Ctx) -> Response:
    repo = ctx.readable_repo()
    oid = resolve_commit(ctx, repo, ctx.param("rev"))
    folder = ctx.param("path").strip("/") if "path" in ctx.request.path_params else ""
    if folder:
        try:
            validate_path(folder)
        except BadRequest as e:
            raise errors.bad_request(str(e)) from None
    q = ctx.request.query_params
    recursive, expand = truthy(q.get("recursive")), truthy(q.get("expand"))
    files = ctx.store.manifest(repo, oid)
    dir_oids = folder_oids(files)
    prefix = folder + "/" if folder else ""
    if folder and folder not in dir_oids:
        raise errors.entry_not_found(f"{folder} does not exist on {ctx.param('rev')}",
                                     {"X-Repo-Commit": oid})
    items: list[tuple[str, str]] = []  # (path, "file"|"dir")
    for p in files:
        if not p.startswith(prefix):
            continue
        rest = p[len(prefix):]
        if recursive or "/" not in rest:
            items.append((p, "file"))
    for f in dir_oids:
        if f.startswith(prefix) and (recursive or "/" not in f[len(prefix):]):
            items.append((f, "dir"))
    items.sort()
    entries = [file_json(ctx, repo, p, files[p], expand) if kind == "file"
               else folder_json(ctx, repo, files, p, dir_oids[p], expand) for p, kind in items]
    return paged(ctx, entries, ctx.config.tree_expand_page_size if expand else ctx.config.tree_page_size)


async def paths_info(request: Request) -> Response:
    """POST form `paths=a&paths=b&expand=...` (huggingface_hub sends form data here, not JSON)."""
    store, config = app_state(request)
    try:
        raw = await request.body()
        if len(raw) > config.max_json_body_bytes:
            raise HubError(413, "Request body too large")
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                form = json.loads(raw or b"{}")
            except ValueError:
                raise errors.bad_request("Request body is not valid JSON") from None
            paths, expand = form.get("paths") or [], bool(form.get("expand"))
        else:
            form = parse_qs(raw.decode("utf-8", "replace"))
            paths, expand = form.get("paths", []), truthy((form.get("expand") or [""])[0])

        def run():
            ctx = Ctx(request, store, config, authenticate(store, request.headers.get("authorization")))
            repo = ctx.readable_repo()
            oid = resolve_commit(ctx, repo, ctx.param("rev"))
            files = ctx.store.manifest(repo, oid)
            dir_oids = folder_oids(files)
            out = []
            for p in paths:
                p = p.strip("/")
                if p in files:
                    out.append(file_json(ctx, repo, p, files[p], expand))
                elif p in dir_oids:
                    out.append(folder_json(ctx, repo, files, p, dir_oids[p], expand))
            return out

        return JSONResponse(await run_in_threadpool(run))
    except HubError as e:
        return e.response()
    except StorageError as e:
        return map_storage_error(e).response()


UNGATED_FILES = ("README.md", ".gitattributes")  # readable in a gated repo, as on the Hub


def check_gated(ctx: Ctx, repo: Repo) -> None:
    """Gated repos (as on the Hub): the card and listings are public, files need an accepted user. Here
    `auto` accepts every signed-in user; `manual` only the owner's members (no access requests here)."""
    p = ctx.principal
    if not repo.gated or (p is not None and p.member_of(repo.namespace)):
        return
    if p is None:
        raise errors.gated(f"Access to {repo.repo_id} is restricted: it is gated, sign in (send a token) "
                           "to download its files", authenticated=False)
    if repo.gated == "manual":
        raise errors.gated(f"Access to {repo.repo_id} is restricted to members of {repo.namespace}: its access is "
                           "granted manually, ask the owner to add you to the org", authenticated=True)


def resolve_file(ctx: Ctx) -> Response:
    """GET/HEAD a file at a revision, with the headers file_download.py relies on.

    ETag is the git blob id (regular) or the sha256 (LFS, also as X-Linked-Etag / X-Linked-Size,
    as the Hub answers for LFS files); X-Repo-Commit is the resolved commit. The body is served
    directly (no CDN redirect); Starlette's FileResponse handles Range and HEAD.
    """
    repo = ctx.readable_repo()
    oid = resolve_commit(ctx, repo, ctx.param("rev"))
    path = ctx.param("path")
    if path not in UNGATED_FILES:
        check_gated(ctx, repo)
    try:
        validate_path(path)
    except BadRequest as e:
        raise errors.bad_request(str(e)) from None
    entry = ctx.store.manifest(repo, oid).get(path)
    if entry is None:
        raise errors.entry_not_found(f"{path} does not exist at revision {ctx.param('rev')}", {"X-Repo-Commit": oid})
    if not ctx.store.has_blob(entry.sha256):
        raise errors.entry_not_found(f"The content of {path} was permanently deleted (LFS file deletion)",
                                     {"X-Repo-Commit": oid})
    headers = {"X-Repo-Commit": oid, "Accept-Ranges": "bytes",
               "ETag": f'"{entry.sha256 if entry.lfs else entry.oid}"', "Cache-Control": "private, max-age=0"}
    if entry.lfs:
        headers["X-Linked-Etag"] = f'"{entry.sha256}"'
        headers["X-Linked-Size"] = str(entry.size)
    response = FileResponse(ctx.store.blob_path(entry.sha256), headers=headers,
                            media_type="application/octet-stream")
    response.chunk_size = 1 << 20  # 64 KiB by default: larger sends are markedly faster for model files
    return response
