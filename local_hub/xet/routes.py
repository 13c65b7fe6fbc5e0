"""HTTP routes of the Xet protocol: the Hub's token routes and the CAS routes they point at.

What huggingface_hub 2.4 + hf_xet call on upload: `GET /api/{type}s/{id}/xet-write-token/{rev}`
(the casUrl, a short-lived CAS token and its expiry, in the JSON body and in X-Xet-* headers), then on
the casUrl `GET /v1/chunks/...` (global dedup: always 404 here), `POST /v1/xorbs/default/{hash}` and
`POST /v1/shards`. Routes this server does not serve (`/v1/xorb-grants`, `/v2/shards`) answer 404 and
the client falls back. Downloads keep the plain `resolve` route (no X-Xet-Hash header is sent).
"""

from __future__ import annotations

import threading
import weakref

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from local_hub.context import Ctx, app_state, endpoint
from local_hub.errors import HubError
from local_hub.storage import Storage
from local_hub.xet.cas import CasTokenError, XetStore
from local_hub.xet.hashing import HEX_RE
from local_hub.xet.shard import MAX_SHARD_BYTES, ShardError
from local_hub.xet.xorb import MAX_XORB_BYTES, XorbError

CAS = "/xet/{cas_id}"
_stores: "weakref.WeakKeyDictionary[Storage, XetStore]" = weakref.WeakKeyDictionary()
_stores_lock = threading.Lock()


def xet_store(store: Storage) -> XetStore:
    """The one XetStore of a Storage (created on first use, then shared by all requests)."""
    with _stores_lock:
        xs = _stores.get(store)
        if xs is None:
            xs = _stores[store] = XetStore(store)
        return xs


# ---------------------------------------------------------------------------------------------- Hub side
def _token_answer(ctx: Ctx, scope: str) -> Response:
    repo = ctx.writable_repo("upload files to this repo") if scope == "write" else ctx.readable_repo()
    xs = xet_store(ctx.store)
    token, exp = xs.issue_token(repo, scope)
    cas_url = f"{ctx.base_url}{CAS.format(cas_id=xs.cas_id)}"
    return JSONResponse({"accessToken": token, "exp": exp, "casUrl": cas_url},
                        headers={"X-Xet-Cas-Url": cas_url, "X-Xet-Access-Token": token,
                                 "X-Xet-Token-Expiration": str(exp)})


def write_token(ctx: Ctx) -> Response:
    return _token_answer(ctx, "write")


def read_token(ctx: Ctx) -> Response:
    return _token_answer(ctx, "read")


# ---------------------------------------------------------------------------------------------- CAS side
def _cas(request: Request, need: str):
    """(XetStore, grant) for a CAS request, or HubError: unknown CAS id (a wiped server), bad token."""
    store, _ = app_state(request)
    xs = xet_store(store)
    if request.path_params["cas_id"] != xs.cas_id:
        raise HubError(404, f"unknown CAS {request.path_params['cas_id']!r}: this server's data changed; "
                            "request a new token from the Hub (xet-write-token)")
    try:
        return xs, xs.check_token(request.headers.get("authorization"), need)
    except CasTokenError as e:
        raise HubError(e.status, str(e)) from None


def _hash_param(request: Request, name: str = "hash") -> str:
    value = request.path_params[name]
    if not HEX_RE.match(value):
        raise HubError(400, f"malformed hash {value!r}: expected 64 lowercase hex digits")
    return value


async def _body(request: Request, limit: int) -> bytes:
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise HubError(413, f"request body larger than {limit} bytes")
    return bytes(buf)


def _guard(fn):
    async def handler(request: Request) -> Response:
        try:
            return await fn(request)
        except HubError as e:
            return e.response()
        except (XorbError, ShardError) as e:
            return HubError(400, str(e)).response()
    return handler


@_guard
async def post_xorb(request: Request) -> Response:
    xs, _ = _cas(request, "write")
    hex_hash = _hash_param(request)
    if request.path_params["prefix"] != "default":
        raise HubError(400, "the only xorb prefix is 'default'")
    data = await _body(request, MAX_XORB_BYTES + (1 << 20))
    inserted = await run_in_threadpool(xs.put_xorb, hex_hash, data)
    return JSONResponse({"was_inserted": inserted})


@_guard
async def head_xorb(request: Request) -> Response:
    xs, _ = _cas(request, "read")
    path = xs.xorb_path(_hash_param(request))
    if not path.is_file():
        return Response(status_code=404)
    return Response(headers={"Content-Length": str(path.stat().st_size)})


@_guard
async def post_shard(request: Request) -> Response:
    xs, grant = _cas(request, "write")
    repo = await run_in_threadpool(xs.repo_of, grant)
    if repo is None:
        raise HubError(404, f"the repo of this CAS token ({grant.repo_type} {grant.repo_id}) does not exist any more")
    data = await _body(request, MAX_SHARD_BYTES)
    result = await run_in_threadpool(xs.apply_shard, data, repo)
    return JSONResponse({"result": result})


@_guard
async def query_chunk(request: Request) -> Response:
    """Global deduplication is not offered: every chunk is 'not tracked' (the client uploads it)."""
    _cas(request, "read")
    _hash_param(request)
    return Response(status_code=404)


@_guard
async def head_file(request: Request) -> Response:
    xs, _ = _cas(request, "read")
    recon = await run_in_threadpool(xs.file_reconstruction, _hash_param(request, "file_id"))
    if recon is None:
        return Response(status_code=404)
    return Response(headers={"Content-Length": str(recon["size"])})


def xet_routes(repo_prefix: str) -> list[Route]:
    """All Xet routes; `repo_prefix` is the app's repo route prefix, e.g. "/api/{rtype}s/{ns}/{name}"."""
    return [
        Route(repo_prefix + "/xet-write-token/{rev}", endpoint(write_token), methods=["GET"]),
        Route(repo_prefix + "/xet-read-token/{rev}", endpoint(read_token), methods=["GET"]),
        Route(CAS + "/v1/xorbs/{prefix}/{hash}", post_xorb, methods=["POST"]),
        Route(CAS + "/v1/xorbs/{prefix}/{hash}", head_xorb, methods=["HEAD"]),
        Route(CAS + "/v1/shards", post_shard, methods=["POST"]),
        Route(CAS + "/v1/chunks/{prefix}/{hash}", query_chunk, methods=["GET"]),
        Route(CAS + "/v1/files/{file_id}", head_file, methods=["HEAD"]),
    ]
