"""HTTP routes of the local Hub: the subset of the Hugging Face Hub API that huggingface_hub and datasets use.

The shapes of requests and answers follow the client code of huggingface_hub 2.x (hf_api.py,
_commit_api.py, lfs.py, file_download.py): every route here exists because a client method calls it.
Uploads (preupload, commit, LFS) live in `uploads.py`; per-request plumbing in `context.py`.
"""


from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from local_hub import errors
from local_hub.auth import authenticate, check_read, check_write, check_write_namespace
from local_hub.context import (
    SPACE_APP_FILES, Ctx, _map_storage_error, _paged, _require_dict, _resolve_commit, _state, _truthy, endpoint,
)
from local_hub.errors import HubError
from local_hub.settings import HubSettings
from local_hub.storage import (
    REPO_TYPES, BadRequest, Commit, Entry, Repo, Storage, StorageError, lfs_pointer, now_iso, validate_path,
)
from local_hub.uploads import commit, lfs_batch, lfs_upload, lfs_verify, preupload


# ---------------------------------------------------------------------------------------------- JSON shapes
def _file_json(ctx: Ctx, repo: Repo, path: str, e: Entry, expand: bool) -> dict:
    out: dict[str, Any] = {"type": "file", "oid": e.oid, "size": e.size, "path": path}
    if e.lfs:
        out["lfs"] = {"oid": e.sha256, "size": e.size, "pointerSize": len(lfs_pointer(e.sha256, e.size))}
    if expand:
        out["lastCommit"] = _last_commit_json(ctx.store.commit_info(repo, e.last_commit))
    return out


def _last_commit_json(c: Commit) -> dict:
    return {"id": c.oid, "title": c.title, "date": now_iso(c.created_at)}


def _folder_oids(files: dict[str, Entry]) -> dict[str, str]:
    """A stable id per folder (sha1 over its files' paths and ids), like git's tree ids."""
    hashes: dict[str, Any] = {}
    for path in sorted(files):
        parts = path.split("/")
        for i in range(1, len(parts)):
            folder = "/".join(parts[:i])
            hashes.setdefault(folder, hashlib.sha1()).update(f"{path}\0{files[path].oid}\n".encode())
    return {k: h.hexdigest() for k, h in hashes.items()}


def _folder_json(ctx: Ctx, repo: Repo, files: dict[str, Entry], folder: str, oid: str, expand: bool) -> dict:
    out: dict[str, Any] = {"type": "directory", "oid": oid, "path": folder}
    if expand:
        prefix = folder + "/"
        commits = {e.last_commit for p, e in files.items() if p.startswith(prefix)}
        newest = max((ctx.store.commit_info(repo, c) for c in commits), key=lambda c: c.created_at)
        out["lastCommit"] = _last_commit_json(newest)
    return out


def _card_data(store: Storage, files: dict[str, Entry]) -> dict | None:
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


def _runtime_json(repo: Repo, files: dict[str, Entry], card: dict | None) -> dict:
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


def _repo_info_json(ctx: Ctx, repo: Repo, oid: str, blobs: bool) -> dict:
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
    card = _card_data(ctx.store, files)
    tags = list((card or {}).get("tags") or []) if isinstance((card or {}).get("tags"), list) else []
    info: dict[str, Any] = {
        "_id": f"{repo.id:024x}",
        "id": repo.repo_id,
        "author": repo.namespace,
        "sha": oid,
        "lastModified": now_iso(commit.created_at),
        "createdAt": now_iso(repo.created_at),
        "private": repo.private,
        "disabled": False,
        "gated": False,
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
                    host=None, runtime=_runtime_json(repo, files, card))
    return info


# ---------------------------------------------------------------------------------------------- basic routes
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
    content = _require_dict(body).get("content")
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


def xet_not_available(ctx: Ctx) -> Response:
    """This server has no Xet storage; huggingface_hub 2.x uses Xet for uploads whenever `hf_xet` is installed.

    The answer names the fix, because the client cannot be told to fall back to LFS from here.
    """
    raise HubError(404, "Xet storage is not available on the local hub: set HF_HUB_DISABLE_XET=1 (or uninstall "
                        "hf_xet) so that huggingface_hub uploads large files through LFS")


def _repo_type_from_body(body: dict) -> str:
    rtype = body.get("type") or "model"
    if rtype not in REPO_TYPES:
        raise errors.bad_request(f"Invalid repo type {rtype!r}: use one of {', '.join(REPO_TYPES)}")
    return rtype


def create_repo(ctx: Ctx, body: dict) -> Response:
    body = _require_dict(body)
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
    repo = check_write(ctx.principal, _repo_by_body(ctx, _require_dict(body)), "delete this repo")[1]
    ctx.store.delete_repo(repo)
    return {}


def move_repo(ctx: Ctx, body: dict) -> dict:
    body = _require_dict(body)
    rtype = _repo_type_from_body(body)
    src, dst = body.get("fromRepo"), body.get("toRepo")
    if not isinstance(src, str) or not isinstance(dst, str) or dst.count("/") != 1:
        raise errors.bad_request("'fromRepo' and 'toRepo' (namespace/name) are required")
    repo = check_write(ctx.principal, ctx.store.get_repo(rtype, src), "move this repo")[1]
    namespace, name = dst.split("/")
    check_write_namespace(ctx.principal, namespace, f"move a {rtype} into this namespace")
    ctx.store.move_repo(repo, namespace, name)
    return {}


def update_settings(ctx: Ctx, body: dict) -> dict:
    body = _require_dict(body)
    repo = ctx.writable_repo("change the settings of this repo")
    if "visibility" in body:
        ctx.store.set_private(repo, body["visibility"] != "public")
    elif "private" in body:
        ctx.store.set_private(repo, bool(body["private"]))
    return {}


def list_repos(ctx: Ctx) -> Response:
    rtype = ctx.repo_type()
    q = ctx.request.query_params
    author, search = q.get("author"), (q.get("search") or "").lower()
    out = []
    for repo in ctx.store.list_repos(rtype):
        if repo.private and not (ctx.principal and ctx.principal.member_of(repo.namespace)):
            continue
        if (author and repo.namespace != author) or (search and search not in repo.repo_id.lower()):
            continue
        head = ctx.store.resolve(repo, "main")
        out.append({"_id": f"{repo.id:024x}", "id": repo.repo_id, "author": repo.namespace, "sha": head,
                    "private": repo.private, "likes": 0, "downloads": 0, "tags": [],
                    "createdAt": now_iso(repo.created_at),
                    "lastModified": now_iso(ctx.store.commit_info(repo, head).created_at)})
    return _paged(ctx, out, 1000)


def repo_info(ctx: Ctx) -> dict:
    repo = ctx.readable_repo()
    revision = ctx.param("rev") if "rev" in ctx.request.path_params else "main"
    oid = _resolve_commit(ctx, repo, revision)
    return _repo_info_json(ctx, repo, oid, blobs=_truthy(ctx.request.query_params.get("blobs")))


def auth_check(ctx: Ctx) -> dict:
    if ctx.request.url.path.endswith("/write"):
        ctx.writable_repo("write to this repo")
    else:
        ctx.readable_repo()
    return {}


# ---------------------------------------------------------------------------------------------- tree / paths
def list_tree(ctx: Ctx) -> Response:
    repo = ctx.readable_repo()
    oid = _resolve_commit(ctx, repo, ctx.param("rev"))
    folder = ctx.param("path").strip("/") if "path" in ctx.request.path_params else ""
    if folder:
        try:
            validate_path(folder)
        except BadRequest as e:
            raise errors.bad_request(str(e)) from None
    q = ctx.request.query_params
    recursive, expand = _truthy(q.get("recursive")), _truthy(q.get("expand"))
    files = ctx.store.manifest(repo, oid)
    folder_oids = _folder_oids(files)
    prefix = folder + "/" if folder else ""
    if folder and folder not in folder_oids:
        raise errors.entry_not_found(f"{folder} does not exist on {ctx.param('rev')}",
                                     {"X-Repo-Commit": oid})
    items: list[tuple[str, str]] = []  # (path, "file"|"dir")
    for p in files:
        if not p.startswith(prefix):
            continue
        rest = p[len(prefix):]
        if recursive or "/" not in rest:
            items.append((p, "file"))
    for f in folder_oids:
        if f.startswith(prefix) and (recursive or "/" not in f[len(prefix):]):
            items.append((f, "dir"))
    items.sort()
    entries = [_file_json(ctx, repo, p, files[p], expand) if kind == "file"
               else _folder_json(ctx, repo, files, p, folder_oids[p], expand) for p, kind in items]
    return _paged(ctx, entries, ctx.settings.tree_expand_page_size if expand else ctx.settings.tree_page_size)


async def paths_info(request: Request) -> Response:
    """POST form `paths=a&paths=b&expand=...` (huggingface_hub sends form data here, not JSON)."""
    store, settings = _state(request)
    try:
        raw = await request.body()
        if len(raw) > settings.max_json_body_bytes:
            raise HubError(413, "Request body too large")
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                form = json.loads(raw or b"{}")
            except ValueError:
                raise errors.bad_request("Request body is not valid JSON") from None
            paths, expand = form.get("paths") or [], bool(form.get("expand"))
        else:
            form = parse_qs(raw.decode("utf-8", "replace"))
            paths, expand = form.get("paths", []), _truthy((form.get("expand") or [""])[0])

        def run():
            ctx = Ctx(request, store, settings, authenticate(store, request.headers.get("authorization")))
            repo = ctx.readable_repo()
            oid = _resolve_commit(ctx, repo, ctx.param("rev"))
            files = ctx.store.manifest(repo, oid)
            folder_oids = _folder_oids(files)
            out = []
            for p in paths:
                p = p.strip("/")
                if p in files:
                    out.append(_file_json(ctx, repo, p, files[p], expand))
                elif p in folder_oids:
                    out.append(_folder_json(ctx, repo, files, p, folder_oids[p], expand))
            return out

        return JSONResponse(await run_in_threadpool(run))
    except HubError as e:
        return e.response()
    except StorageError as e:
        return _map_storage_error(e).response()


def list_commits(ctx: Ctx) -> Response:
    repo = ctx.readable_repo()
    oid = _resolve_commit(ctx, repo, ctx.param("rev"))
    formatted = "formatted" in ctx.request.query_params.getlist("expand[]")
    out = []
    for c in ctx.store.history(repo, oid):
        item = {"id": c.oid, "title": c.title, "message": c.message, "date": now_iso(c.created_at),
                "authors": [{"user": c.author, "avatar": None}]}
        if formatted:
            item["formatted"] = {"title": c.title, "message": c.message}
        out.append(item)
    return _paged(ctx, out, ctx.settings.commits_page_size)


def list_refs(ctx: Ctx) -> dict:
    repo = ctx.readable_repo()
    refs = ctx.store.refs(repo)
    out = {
        "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": t} for n, t in refs["branch"].items()],
        "converts": [],
        "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": t} for n, t in refs["tag"].items()],
    }
    if _truthy(ctx.request.query_params.get("include_prs")):
        out["pullRequests"] = []
    return out


def create_branch(ctx: Ctx, body: dict) -> dict:
    repo = ctx.writable_repo("create a branch")
    start = (body or {}).get("startingPoint") or "main"
    ctx.store.create_ref(repo, "branch", ctx.param("branch"), _resolve_commit(ctx, repo, start))
    return {}


def delete_branch(ctx: Ctx) -> dict:
    repo = ctx.writable_repo("delete a branch")
    ctx.store.delete_ref(repo, "branch", ctx.param("branch"))
    return {}


def create_tag(ctx: Ctx, body: dict) -> dict:
    repo = ctx.writable_repo("create a tag")
    tag = _require_dict(body).get("tag")
    if not isinstance(tag, str):
        raise errors.bad_request("'tag' is required")
    ctx.store.create_ref(repo, "tag", tag, _resolve_commit(ctx, repo, ctx.param("rev")))
    return {}


def delete_tag(ctx: Ctx) -> dict:
    repo = ctx.writable_repo("delete a tag")
    ctx.store.delete_ref(repo, "tag", ctx.param("rev"))
    return {}


# ---------------------------------------------------------------------------------------------- resolve
def resolve_file(ctx: Ctx) -> Response:
    """GET/HEAD a file at a revision, with the headers file_download.py relies on.

    ETag is the git blob id (regular) or the sha256 (LFS, also as X-Linked-Etag / X-Linked-Size,
    as the Hub answers for LFS files); X-Repo-Commit is the resolved commit. The body is served
    directly (no CDN redirect); Starlette's FileResponse handles Range and HEAD.
    """
    repo = ctx.readable_repo()
    oid = _resolve_commit(ctx, repo, ctx.param("rev"))
    path = ctx.param("path")
    try:
        validate_path(path)
    except BadRequest as e:
        raise errors.bad_request(str(e)) from None
    entry = ctx.store.manifest(repo, oid).get(path)
    if entry is None:
        raise errors.entry_not_found(f"{path} does not exist at revision {ctx.param('rev')}", {"X-Repo-Commit": oid})
    headers = {"X-Repo-Commit": oid, "Accept-Ranges": "bytes",
               "ETag": f'"{entry.sha256 if entry.lfs else entry.oid}"', "Cache-Control": "private, max-age=0"}
    if entry.lfs:
        headers["X-Linked-Etag"] = f'"{entry.sha256}"'
        headers["X-Linked-Size"] = str(entry.size)
    response = FileResponse(ctx.store.blob_path(entry.sha256), headers=headers,
                            media_type="application/octet-stream")
    response.chunk_size = 1 << 20  # 64 KiB by default: larger sends are markedly faster for model files
    return response


# ---------------------------------------------------------------------------------------------- Spaces
def _space(ctx: Ctx, write: bool) -> Repo:
    repo = ctx.store.get_repo("space", f"{ctx.param('ns')}/{ctx.param('name')}")
    if write:
        return check_write(ctx.principal, repo, "change this Space")[1]
    return check_read(ctx.principal, repo)


def space_variables(ctx: Ctx, body: dict | None = None) -> dict:
    method = ctx.request.method
    repo = _space(ctx, write=method != "GET")
    if method == "POST":
        body = _require_dict(body)
        ctx.store.set_space_setting(repo, "variable", body.get("key"), body.get("value"), body.get("description"))
    elif method == "DELETE":
        ctx.store.delete_space_setting(repo, "variable", _require_dict(body).get("key"))
    return ctx.store.space_settings(repo, "variable")


def space_secrets(ctx: Ctx, body: dict | None = None) -> dict:
    """Secrets can be set and deleted; reading returns names and dates only, never values."""
    method = ctx.request.method
    repo = _space(ctx, write=True)
    if method == "POST":
        body = _require_dict(body)
        ctx.store.set_space_setting(repo, "secret", body.get("key"), body.get("value"), body.get("description"))
        return {}
    if method == "DELETE":
        ctx.store.delete_space_setting(repo, "secret", _require_dict(body).get("key"))
        return {}
    return {k: {"key": k, "description": v["description"], "updatedAt": v["updatedAt"]}
            for k, v in ctx.store.space_settings(repo, "secret").items()}


def space_runtime(ctx: Ctx, body: dict | None = None) -> dict:
    repo = _space(ctx, write=ctx.request.method != "GET")
    head = ctx.store.resolve(repo, "main")
    files = ctx.store.manifest(repo, head)
    return _runtime_json(repo, files, _card_data(ctx.store, files))


# ---------------------------------------------------------------------------------------------- app
REPO = "/api/{rtype}s/{ns}/{name}"
PREFIXED = "/{prefix:prefix}{ns}/{name}"


def _routes() -> list[Route]:
    j = lambda fn: endpoint(fn, json_body=True)  # noqa: E731
    routes = [
        Route("/api/health", endpoint(health), methods=["GET", "HEAD"]),
        Route("/api/whoami-v2", endpoint(whoami), methods=["GET"]),
        Route("/api/repos/create", j(create_repo), methods=["POST"]),
        Route("/api/repos/delete", j(delete_repo), methods=["DELETE", "POST"]),
        Route("/api/repos/move", j(move_repo), methods=["POST"]),
        Route("/api/validate-yaml", j(validate_yaml), methods=["POST"]),
        Route("/api/lfs-upload/{repo_pk}/{oid}", lfs_upload, methods=["PUT", "POST"]),
        Route("/api/spaces/{ns}/{name}/variables", j(space_variables), methods=["GET", "POST", "DELETE"]),
        Route("/api/spaces/{ns}/{name}/secrets", j(space_secrets), methods=["GET", "POST", "DELETE"]),
        Route("/api/spaces/{ns}/{name}/runtime", j(space_runtime), methods=["GET"]),
        Route("/api/spaces/{ns}/{name}/restart", j(space_runtime), methods=["POST"]),
        Route("/api/{rtype}s", endpoint(list_repos), methods=["GET"]),
        Route(REPO, endpoint(repo_info), methods=["GET"]),
        Route(REPO + "/revision/{rev}", endpoint(repo_info), methods=["GET"]),
        Route(REPO + "/settings", j(update_settings), methods=["PUT"]),
        Route(REPO + "/auth-check", endpoint(auth_check), methods=["GET"]),
        Route(REPO + "/auth-check/write", endpoint(auth_check), methods=["GET"]),
        Route(REPO + "/tree/{rev}", endpoint(list_tree), methods=["GET"]),
        Route(REPO + "/tree/{rev}/{path:path}", endpoint(list_tree), methods=["GET"]),
        Route(REPO + "/paths-info/{rev}", paths_info, methods=["POST"]),
        Route(REPO + "/preupload/{rev}", j(preupload), methods=["POST"]),
        Route(REPO + "/commit/{rev}", commit, methods=["POST"]),
        Route(REPO + "/commits/{rev}", endpoint(list_commits), methods=["GET"]),
        Route(REPO + "/refs", endpoint(list_refs), methods=["GET"]),
        Route(REPO + "/xet-write-token/{rev}", endpoint(xet_not_available), methods=["GET"]),
        Route(REPO + "/xet-read-token/{rev}", endpoint(xet_not_available), methods=["GET"]),
        Route(REPO + "/branch/{branch}", j(create_branch), methods=["POST"]),
        Route(REPO + "/branch/{branch}", endpoint(delete_branch), methods=["DELETE"]),
        Route(REPO + "/tag/{rev}", j(create_tag), methods=["POST"]),
        Route(REPO + "/tag/{rev}", endpoint(delete_tag), methods=["DELETE"]),
        Route(PREFIXED + ".git/info/lfs/objects/batch", j(lfs_batch), methods=["POST"]),
        Route(PREFIXED + ".git/info/lfs/objects/verify", j(lfs_verify), methods=["POST"]),
        Route(PREFIXED + "/resolve/{rev}/{path:path}", endpoint(resolve_file), methods=["GET", "HEAD"]),
    ]
    return routes


class _RawPath:
    """Route on the raw path so that `%2F` inside a revision stays inside one segment."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("raw_path"):
            scope = dict(scope, path=scope["raw_path"].decode("latin-1"))
        await self.app(scope, receive, send)


def create_app(data_dir, settings: HubSettings | None = None):
    """The ASGI app serving DATA_DIR; creates the default user and token on first start."""
    from starlette.convertors import CONVERTOR_TYPES, Convertor

    if "prefix" not in CONVERTOR_TYPES:
        class PrefixConvertor(Convertor):
            regex = "(?:datasets/|spaces/)?"

            def convert(self, value: str) -> str:
                return value.rstrip("/")

            def to_string(self, value: str) -> str:
                return value + "/" if value else ""

        CONVERTOR_TYPES["prefix"] = PrefixConvertor()

    store = Storage(data_dir)
    store.clean_tmp()
    store.bootstrap()
    app = Starlette(routes=_routes())
    app.state.store = store
    app.state.settings = settings or HubSettings()
    return _RawPath(app)
