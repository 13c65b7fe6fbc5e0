"""Listings: `list_models` / `list_datasets` / `list_spaces` with their filters and sort, the storage
listing behind `hf repos ls`, and the agent-harness registry every client process asks for.

Why strict: a filter this server cannot apply is refused with a 400 naming it, never silently ignored,
so a script gets the Hub's result or an error, not a quietly different list.
"""

from __future__ import annotations

from starlette.responses import Response

from local_hub import errors
from local_hub.auth import can_read
from local_hub.context import Ctx, paged, truthy
from local_hub.shapes import card_data, repo_info_json, repo_tags
from local_hub.storage import DEFAULT_BRANCH, REPO_TYPES, Repo, now_iso

LIST_PAGE_SIZE = 1000
# Query parameters each listing understands; the clients send only what the caller asked for.
COMMON_PARAMS = {"search", "author", "filter", "sort", "direction", "limit", "cursor", "full", "cardData",
                 "expand", "gated"}
EXTRA_PARAMS = {"model": {"pipeline_tag"}, "dataset": set(), "space": set()}
# `sort` values -> the key sorted on (downloads, likes and trending are all 0 here: ties keep id order).
SORT_KEYS = {"lastModified", "createdAt", "downloads", "likes", "trendingScore", "id"}
EXPANDABLE = {"author", "cardData", "createdAt", "disabled", "downloads", "gated", "lastModified", "library_name",
              "likes", "pipeline_tag", "private", "sha", "siblings", "tags", "usedStorage", "sdk", "runtime",
              "subdomain", "description", "modelId"}


def _summary(ctx: Ctx, repo: Repo, head: str, card: dict | None) -> dict:
    return {"_id": f"{repo.id:024x}", "id": repo.repo_id, "author": repo.namespace, "sha": head,
            "private": repo.private, "gated": repo.gated or False, "likes": 0, "downloads": 0,
            "tags": repo_tags(repo, card), "createdAt": now_iso(repo.created_at),
            "lastModified": now_iso(ctx.store.commit_info(repo, head).created_at)}


def list_repos(ctx: Ctx) -> Response:
    rtype = ctx.repo_type()
    q = ctx.request.query_params
    unknown = sorted(set(q) - COMMON_PARAMS - EXTRA_PARAMS[rtype])
    if unknown:
        raise errors.bad_request(f"The local hub cannot filter {rtype}s by {', '.join(unknown)}: "
                                 f"use one of {', '.join(sorted(COMMON_PARAMS | EXTRA_PARAMS[rtype]))}")
    sort = q.get("sort")
    if sort is not None and sort not in SORT_KEYS:
        raise errors.bad_request(f"Invalid sort {sort!r}: use one of {', '.join(sorted(SORT_KEYS))}")
    direction = q.get("direction", "-1")
    if direction not in ("-1", "1"):
        raise errors.bad_request("direction must be -1 (descending) or 1 (ascending)")
    expand = q.getlist("expand") + q.getlist("expand[]")
    bad = sorted(set(expand) - EXPANDABLE)
    if bad:
        raise errors.bad_request(f"Invalid expand {', '.join(bad)}: use some of {', '.join(sorted(EXPANDABLE))}")
    if expand and (truthy(q.get("full")) or truthy(q.get("cardData"))):
        raise errors.bad_request("expand cannot be combined with full or cardData")
    wanted = set(q.getlist("filter"))
    if q.get("pipeline_tag"):
        wanted.add(q["pipeline_tag"])
    gated = q.get("gated")
    if gated is not None and gated.lower() not in ("true", "false"):
        raise errors.bad_request("gated must be true or false")
    author, searches = q.get("author"), [s.lower() for s in q.getlist("search") if s]

    out = []
    for repo in ctx.store.list_repos(rtype):
        if not can_read(ctx.principal, repo):
            continue
        if author and repo.namespace.lower() != author.lower():
            continue
        if any(s not in repo.repo_id.lower() for s in searches):
            continue
        if gated is not None and bool(repo.gated) != (gated.lower() == "true"):
            continue
        head = ctx.store.resolve(repo, DEFAULT_BRANCH)
        files = ctx.store.manifest(repo, head)
        card = card_data(ctx.store, files)
        item = _summary(ctx, repo, head, card)
        if wanted - set(item["tags"]) - {repo.repo_id}:
            continue  # every filter must match (the Hub ANDs them), a tag or the repo id
        if truthy(q.get("full")) or truthy(q.get("cardData")) or expand:
            full = repo_info_json(ctx, repo, head, blobs=False)
            if expand:
                item = {k: v for k, v in full.items() if k in expand or k in ("_id", "id")}
            else:
                item = full if truthy(q.get("full")) else dict(item, cardData=full.get("cardData"))
        out.append(item)
    if sort and sort != "id":
        key = {"lastModified": "lastModified", "createdAt": "createdAt"}.get(sort)
        out.sort(key=(lambda it: (it.get(key) or "")) if key else (lambda it: 0), reverse=direction == "-1")
    elif sort == "id":
        out.sort(key=lambda it: it["id"], reverse=direction == "-1")
    return paged(ctx, out, LIST_PAGE_SIZE)


def storage_listing(ctx: Ctx) -> Response:
    """`hf repos ls` (`list_user_repos`): the caller's repos, or an org's, with their storage."""
    p = ctx.principal
    if p is None:
        raise errors.unauthorized("You must be authenticated (Authorization: Bearer <token>) to list your repos")
    namespace = ctx.param("org") if "org" in ctx.request.path_params else p.user
    if not p.member_of(namespace):
        raise errors.forbidden(f"You are not a member of {namespace!r}")
    items = []
    for rtype in REPO_TYPES:
        for repo in ctx.store.list_repos(rtype):
            if repo.namespace != namespace:
                continue
            head = ctx.store.resolve(repo, DEFAULT_BRANCH)
            files = ctx.store.manifest(repo, head)
            items.append({"id": repo.repo_id, "type": rtype,
                          "updatedAt": now_iso(ctx.store.commit_info(repo, head).created_at),
                          "visibility": "private" if repo.private else "public",
                          "storage": sum(e.size for e in files.values())})
    total = sum(it["storage"] for it in items) or 1
    for it in items:
        it["storagePercent"] = 100.0 * it["storage"] / total
    return paged(ctx, items, LIST_PAGE_SIZE)


def agent_harnesses(ctx: Ctx) -> dict:
    """The registry of AI-agent harnesses (`utils/_detect_agent.py`): none are registered here, which the
    client reads as "no agent detected", as when the Hub is unreachable."""
    return {"standardEnvVars": [], "harnesses": {}}
