"""Uploads: preupload (regular or LFS per file), the NDJSON commit, and the git-lfs batch API.

Shapes follow huggingface_hub's _commit_api.py and lfs.py. File contents become durable blobs before
the commit; the commit itself is one SQLite transaction, so a broken or killed upload never shows.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import hashlib
import hmac
import json
import time
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from local_hub import errors
from local_hub.auth import authenticate, check_contribute
from local_hub.context import Ctx, app_state, map_storage_error, require_dict, resolve_commit, truthy
from local_hub.errors import HubError
from local_hub.settings import LocalHubConfig
from local_hub.storage import (
    BadRequest, Entry, Operation, Repo, StorageError, git_blob_oid, lfs_pointer, now_iso, validate_path,
)


def _gitattributes_lfs_patterns(ctx: Ctx, files: dict[str, Entry]) -> list[str]:
    entry = files.get(".gitattributes")
    if entry is None or entry.size > 1024 * 1024:
        return []
    patterns = []
    for line in ctx.store.read_blob(entry.sha256).decode("utf-8", "replace").splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return patterns


def _matches_gitattributes(path: str, patterns: list[str]) -> bool:
    name = path.rsplit("/", 1)[-1]
    for pat in patterns:
        if "/" in pat:
            if fnmatch.fnmatch(path, pat.replace("**/", "*")) or fnmatch.fnmatch(path, pat):
                return True
        elif fnmatch.fnmatch(name, pat):
            return True
    return False


def _matches_gitignore(path: str, gitignore: str | None) -> bool:
    if not gitignore:
        return False
    ignored = False
    for line in gitignore.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pat = line[1:] if negate else line
        pat = pat.rstrip("/")
        anchored = pat.startswith("/") or "/" in pat
        pat = pat.lstrip("/")
        hit = fnmatch.fnmatch(path, pat) or fnmatch.fnmatch(path, pat + "/*") if anchored else any(
            fnmatch.fnmatch(part, pat) for part in path.split("/"))
        if hit:
            ignored = not negate
    return ignored


def preupload(ctx: Ctx, body: dict) -> dict:
    """Tell the client, per file, whether to send it inline ("regular") or through LFS."""
    body = require_dict(body)
    repo = ctx.committable_repo(ctx.param("rev"), truthy(ctx.request.query_params.get("create_pr")))
    head = resolve_commit(ctx, repo, ctx.param("rev"))
    files = ctx.store.manifest(repo, head)
    patterns = _gitattributes_lfs_patterns(ctx, files)
    # As on the Hub: the client's `gitIgnore` (a .gitignore it is committing) first, else the repo's own.
    gitignore = body.get("gitIgnore")
    if not isinstance(gitignore, str):
        stored = files.get(".gitignore")
        gitignore = ctx.store.read_blob(stored.sha256).decode("utf-8", "replace") if stored and \
            stored.size <= 1024 * 1024 else None
    items = body.get("files")
    if not isinstance(items, list):
        raise errors.bad_request("'files' must be a list of {path, sample, size}")
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise errors.bad_request("each item of 'files' must be an object {path, sample, size}")
        path, size = item.get("path"), item.get("size")
        try:
            validate_path(path)
        except BadRequest as e:
            raise errors.bad_request(str(e)) from None
        if not isinstance(size, int) or size < 0:
            raise errors.bad_request(f"invalid size for {path}: {size!r}")
        try:
            sample = base64.b64decode(item.get("sample") or "", validate=True)
        except (binascii.Error, ValueError):
            raise errors.bad_request(f"'sample' of {path} is not valid base64") from None
        lfs = size > ctx.config.lfs_threshold_bytes or b"\0" in sample or _matches_gitattributes(path, patterns)
        mode = "lfs" if lfs else "regular"
        existing = files.get(path)
        oid = None
        if existing is not None and existing.lfs == lfs:
            oid = existing.sha256 if lfs else existing.oid
        out.append({"path": path, "uploadMode": mode, "shouldIgnore": _matches_gitignore(path, gitignore),
                    "oid": oid})
    return {"files": out, "commitOid": head}


class _LineReader:
    """Splits a streamed request body into NDJSON lines, refusing lines above a size limit."""

    def __init__(self, request: Request, config: LocalHubConfig):
        self.stream = request.stream().__aiter__()
        self.buf = bytearray()
        self.done = False
        self.config = config
        self.count = 0

    async def next_line(self) -> bytes | None:
        limit = self.config.max_header_line_bytes if self.count == 0 else self.config.max_commit_line_bytes
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line = bytes(self.buf[:nl])
                del self.buf[:nl + 1]
                if len(line) > limit:
                    break
                self.count += 1
                if not line.strip():
                    continue
                return line
            if len(self.buf) > limit:
                break
            if self.done:
                if self.buf.strip():
                    line, self.buf = bytes(self.buf), bytearray()
                    self.count += 1
                    return line
                return None
            try:
                self.buf += await self.stream.__anext__()
            except StopAsyncIteration:
                self.done = True
        what = "header line" if self.count == 0 else f"line {self.count + 1}"
        raise HubError(413, f"Commit payload {what} is larger than {limit} bytes")


async def commit(request: Request) -> Response:
    """NDJSON commit: a header line, then file / lfsFile / deletedFile / deletedFolder lines.

    Regular files are written to the blob store as they stream in; the commit itself is one SQLite
    transaction at the end, so a broken request leaves only unreferenced blobs, never a half commit.
    """
    store, config = app_state(request)
    try:
        ctx = await run_in_threadpool(
            lambda: Ctx(request, store, config, authenticate(store, request.headers.get("authorization"))))
        branch = ctx.param("rev")
        create_pr = truthy(request.query_params.get("create_pr"))
        repo = await run_in_threadpool(ctx.committable_repo, branch, create_pr)
        reader = _LineReader(request, config)
        header: dict | None = None
        ops: list[Operation] = []
        line_no = 0
        while (line := await reader.next_line()) is not None:
            line_no += 1
            try:
                item = json.loads(line)
            except ValueError as e:
                raise errors.bad_request(f"Malformed NDJSON: line {line_no} is not valid JSON ({e})") from None
            if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
                raise errors.bad_request(f"Malformed NDJSON: line {line_no} must be {{\"key\": ..., \"value\": {{...}}}}")
            key, value = item.get("key"), item["value"]
            if line_no == 1:
                if key != "header":
                    raise errors.bad_request("Malformed NDJSON: the first line must be the header")
                header = value
                continue
            ops.append(await _operation(ctx, repo, key, value, line_no))
        if header is None:
            raise errors.bad_request("Malformed NDJSON: empty commit payload (no header line)")
        title = header.get("summary")
        if not isinstance(title, str) or not title.strip():
            raise errors.bad_request("The commit header needs a non-empty 'summary'")
        parent = header.get("parentCommit")
        if parent is not None and not isinstance(parent, str):
            raise errors.bad_request("'parentCommit' must be a commit id")
        author = ctx.principal.user
        message = str(header.get("description") or "")
        pr_url = None
        if create_pr:
            num, oid = await run_in_threadpool(
                lambda: store.commit_as_pr(repo, branch, ops, title=title.strip(), message=message, author=author,
                                           parent_commit=parent))
            pr_url = f"{ctx.repo_url(repo)}/discussions/{num}"
        else:
            oid = await run_in_threadpool(
                lambda: store.commit(repo, branch, ops, title=title.strip(), message=message, author=author,
                                     parent_commit=parent))
    except HubError as e:
        return e.response()
    except StorageError as e:
        return map_storage_error(e).response()
    return JSONResponse({"success": True, "commitOid": oid, "commitUrl": f"{ctx.repo_url(repo)}/commit/{oid}",
                         "hookOutput": "", "pullRequestUrl": pr_url})


async def _operation(ctx: Ctx, repo: Repo, key: Any, value: dict, line_no: int) -> Operation:
    path = value.get("path")
    try:
        validate_path(path.rstrip("/") if isinstance(path, str) and key == "deletedFolder" else path)
    except BadRequest as e:
        raise errors.bad_request(f"line {line_no}: {e}") from None
    if key == "file":
        encoding = value.get("encoding", "base64")
        content = value.get("content")
        if not isinstance(content, str):
            raise errors.bad_request(f"line {line_no}: 'content' of {path} must be a string")
        if encoding == "base64":
            try:
                data = base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise errors.bad_request(f"line {line_no}: content of {path} is not valid base64") from None
        elif encoding in ("utf-8", "utf8"):
            data = content.encode()
        else:
            raise errors.bad_request(f"line {line_no}: unknown encoding {encoding!r} (use base64)")
        sha = await run_in_threadpool(ctx.store.put_bytes, data)
        return Operation("add", path, sha, len(data), False, git_blob_oid(data))
    if key == "lfsFile":
        oid = value.get("oid")
        if value.get("algo", "sha256") != "sha256" or not isinstance(oid, str):
            raise errors.bad_request(f"line {line_no}: lfsFile needs algo 'sha256' and an 'oid'")
        known = await run_in_threadpool(ctx.store.lfs_known, repo, oid)
        if not known:
            raise HubError(422, f"line {line_no}: LFS object {oid} for {path} was not uploaded to this repo; "
                                "upload it through the LFS batch API first")
        size = ctx.store.blob_path(oid).stat().st_size
        if value.get("size") is not None and value.get("size") != size:
            raise errors.bad_request(f"line {line_no}: size of {path} is {size}, not {value.get('size')}")
        return Operation("add", path, oid, size, True, git_blob_oid(lfs_pointer(oid, size)))
    if key == "deletedFile":
        return Operation("delete_file", path)
    if key == "deletedFolder":
        return Operation("delete_folder", path.rstrip("/"))
    raise errors.bad_request(f"line {line_no}: unknown operation {key!r} "
                             "(expected file, lfsFile, deletedFile or deletedFolder)")


# ---------------------------------------------------------------------------------------------- LFS
LFS_JSON = "application/vnd.git-lfs+json"


def _sign(secret: bytes, repo_pk: int, oid: str, size: int, expires: int) -> str:
    return hmac.new(secret, f"{repo_pk}:{oid}:{size}:{expires}".encode(), hashlib.sha256).hexdigest()


def lfs_batch(ctx: Ctx, body: dict) -> Response:
    """git-lfs batch API, basic transfer only: the upload href is a signed URL of this server."""
    body = require_dict(body)
    operation = body.get("operation")
    if operation != "upload":
        raise HubError(422, f"LFS operation {operation!r} is not supported: only 'upload' (downloads use /resolve)")
    # Contributors upload LFS objects for their pull requests; only commits decide where they show.
    repo = check_contribute(ctx.principal, ctx.repo(), "upload LFS files to this repo")[1]
    objects = body.get("objects")
    if not isinstance(objects, list):
        raise errors.bad_request("'objects' must be a list of {oid, size}")
    secret = ctx.store.server_secret()
    expires = int(time.time()) + ctx.config.lfs_upload_url_ttl_s
    out = []
    for obj in objects:
        oid, size = (obj or {}).get("oid"), (obj or {}).get("size")
        if not isinstance(oid, str) or len(oid) != 64 or any(c not in "0123456789abcdef" for c in oid) \
                or not isinstance(size, int) or size < 0:
            out.append({"oid": str(oid), "size": size if isinstance(size, int) else 0,
                        "error": {"code": 422, "message": "oid must be a sha256 hex digest and size an integer"}})
            continue
        entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
        if not ctx.store.lfs_known(repo, oid):
            sig = _sign(secret, repo.id, oid, size, expires)
            href = f"{ctx.base_url}/api/lfs-upload/{repo.id}/{oid}?" + urlencode(
                {"size": size, "expires": expires, "sig": sig})
            entry["actions"] = {
                "upload": {"href": href, "expires_at": now_iso(expires)},
                "verify": {"href": f"{ctx.repo_url(repo)}.git/info/lfs/objects/verify"},
            }
        out.append(entry)
    return JSONResponse({"transfer": "basic", "objects": out, "hash_algo": "sha256"}, media_type=LFS_JSON)


async def lfs_upload(request: Request) -> Response:
    """PUT target of a signed upload URL: stream to a temp file, check sha256 and size, then install."""
    store, _ = app_state(request)
    try:
        repo_pk, oid = int(request.path_params["repo_pk"]), request.path_params["oid"]
        q = request.query_params
        size, expires, sig = int(q["size"]), int(q["expires"]), q["sig"]
    except (KeyError, ValueError):
        return errors.bad_request("Malformed LFS upload URL").response()
    if not hmac.compare_digest(sig, _sign(store.server_secret(), repo_pk, oid, size, expires)):
        return errors.forbidden("Invalid signature on LFS upload URL").response()
    if expires < time.time():
        return errors.forbidden("LFS upload URL expired: request a new one from the batch API").response()
    repo = await run_in_threadpool(store.get_repo_by_pk, repo_pk)
    if repo is None:
        return errors.repo_not_found(True).response()
    writer = await run_in_threadpool(store.blob_writer)
    try:
        async for chunk in request.stream():
            writer.write(chunk)
            if writer.size > size:
                break
        if writer.size != size:
            writer.abort()
            return errors.bad_request(f"Uploaded {writer.size} bytes for {oid}, expected {size}").response()
        if writer.sha256() != oid:
            writer.abort()
            return errors.bad_request(f"Uploaded content does not match oid {oid}").response()
        await run_in_threadpool(writer.finish)
    except BaseException:
        writer.abort()
        raise
    await run_in_threadpool(store.lfs_register, repo, oid, size)
    return JSONResponse({})


def lfs_verify(ctx: Ctx, body: dict) -> Response:
    repo = check_contribute(ctx.principal, ctx.repo(), "verify LFS uploads")[1]
    oid, size = require_dict(body).get("oid"), body.get("size")
    if not isinstance(oid, str) or not ctx.store.lfs_known(repo, oid):
        raise HubError(404, f"LFS object {oid} was not uploaded")
    if size is not None and ctx.store.blob_path(oid).stat().st_size != size:
        raise HubError(422, f"LFS object {oid} has a different size than {size}")
    return JSONResponse({"message": "ok"}, media_type=LFS_JSON)
