"""Discussions and pull requests over HTTP: list, details (with the PR's diff), open, comment, rename,
close or reopen, merge. Shapes follow huggingface_hub's hf_api.py and community.py.

Who may do what (as on the Hub): anyone who can read the repo may open threads and comment, with a
`write` token; the author or a writer of the repo renames and closes; only a writer merges.
"""

from __future__ import annotations

import difflib

from local_hub import errors
from local_hub.auth import check_contribute, check_write, may_write
from local_hub.context import Ctx, require_dict, truthy
from local_hub.storage import Discussion, DiscussionEvent, Entry, Repo, Storage, now_iso

PAGE_SIZE = 50        # discussions per page, as the Hub pages them
MAX_DIFF_BYTES = 1 << 20  # regular files up to this size are diffed line by line; larger ones as binary


def event_json(e: DiscussionEvent) -> dict:
    return {"id": e.id, "type": e.type, "createdAt": now_iso(e.created_at), "author": {"name": e.author},
            "data": e.data}


def discussion_json(ctx: Ctx, repo: Repo, d: Discussion) -> dict:
    return {"num": d.num, "title": d.title, "status": d.status, "createdAt": now_iso(d.created_at),
            "author": {"name": d.author}, "repo": {"name": repo.repo_id, "type": repo.type},
            "isPullRequest": d.is_pr, "pinned": False, "topReactions": [],
            "url": f"{ctx.repo_url(repo)}/discussions/{d.num}"}


def _num(ctx: Ctx) -> int:
    try:
        num = int(ctx.param("num"))
    except ValueError:
        raise errors.bad_request("the discussion number must be a positive integer") from None
    if num < 1:
        raise errors.bad_request("the discussion number must be a positive integer")
    return num


def _diff(store: Storage, changes: dict[str, Entry | None], before: dict[str, Entry]) -> str:
    """A git-style diff of the PR's changes (text for small regular files, a note for LFS/binary)."""
    out = []
    for path in sorted(changes):
        old, new = before.get(path), changes[path]
        out.append(f"diff --git a/{path} b/{path}\n")
        texts = []
        for e in (old, new):
            if e is None:
                texts.append([])
            elif e.lfs or e.size > MAX_DIFF_BYTES:
                texts.append(None)
            else:
                try:
                    texts.append(store.read_blob(e.sha256).decode("utf-8").splitlines(keepends=True))
                except UnicodeDecodeError:
                    texts.append(None)
        if None in texts:
            out.append(f"Binary files a/{path} and b/{path} differ\n")
            continue
        out.extend(difflib.unified_diff(texts[0], texts[1], "/dev/null" if old is None else f"a/{path}",
                                        "/dev/null" if new is None else f"b/{path}"))
    return "".join(out)


def list_discussions(ctx: Ctx) -> dict:
    repo = ctx.readable_repo()
    q = ctx.request.query_params
    kind = q.get("type") or "all"
    if kind not in ("all", "discussion", "pull_request"):
        raise errors.bad_request(f"type must be all, discussion or pull_request, not {kind!r}")
    status = q.get("status") or "all"
    if status not in ("all", "open", "closed", "merged", "draft"):
        raise errors.bad_request(f"status must be all, open, closed, merged or draft, not {status!r}")
    try:
        page = int(q.get("p") or 0)
    except ValueError:
        raise errors.bad_request("p (the page number) must be an integer") from None
    items = ctx.store.list_discussions(repo, kind=None if kind == "all" else kind,
                                       status=None if status == "all" else status, author=q.get("author"))
    start = max(page, 0) * PAGE_SIZE
    return {"discussions": [discussion_json(ctx, repo, d) for d in items[start:start + PAGE_SIZE]],
            "count": len(items), "start": start,
            "numClosedDiscussions": sum(d.status != "open" for d in items)}


def discussion_details(ctx: Ctx) -> dict:
    repo = ctx.readable_repo()
    d = ctx.store.get_discussion(repo, _num(ctx))
    out = discussion_json(ctx, repo, d)
    out["events"] = [event_json(e) for e in ctx.store.events(repo, d.num)]
    if d.is_pr:
        changes, clash = ctx.store.pr_changes(repo, d)
        out["changes"] = {"base": f"refs/heads/{d.base_branch}"}
        if d.merge_commit:
            out["changes"]["mergeCommitId"] = d.merge_commit
        out["filesWithConflicts"] = [] if d.status == "merged" else clash
        if truthy(ctx.request.query_params.get("diff")):
            out["diff"] = _diff(ctx.store, changes, ctx.store.manifest(repo, d.base_commit))
    return out


def create_discussion(ctx: Ctx, body: dict) -> dict:
    body = require_dict(body)
    principal, repo = check_contribute(ctx.principal, ctx.repo(), "open a discussion")
    num = ctx.store.create_discussion(repo, body.get("title"), str(body.get("description") or ""), principal.user,
                                      pull_request=bool(body.get("pullRequest")))
    return {"num": num, "url": f"{ctx.repo_url(repo)}/discussions/{num}"}


def _author_or_writer(ctx: Ctx, what: str) -> tuple[Repo, Discussion]:
    principal, repo = check_contribute(ctx.principal, ctx.repo(), what)
    d = ctx.store.get_discussion(repo, _num(ctx))
    if d.author != principal.user and not may_write(principal, repo):
        raise errors.forbidden(f"Only the author of #{d.num} or a writer of {repo.repo_id} may {what}")
    return repo, d


def comment(ctx: Ctx, body: dict) -> dict:
    principal, repo = check_contribute(ctx.principal, ctx.repo(), "comment")
    event = ctx.store.comment(repo, _num(ctx), principal.user, require_dict(body).get("comment"))
    return {"newMessage": event_json(event)}


def rename(ctx: Ctx, body: dict) -> dict:
    repo, d = _author_or_writer(ctx, "rename this discussion")
    event = ctx.store.rename_discussion(repo, d.num, ctx.principal.user, require_dict(body).get("title"))
    return {"newTitle": event_json(event)}


def change_status(ctx: Ctx, body: dict) -> dict:
    body = require_dict(body)
    repo, d = _author_or_writer(ctx, "change the status of this discussion")
    event = ctx.store.set_status(repo, d.num, ctx.principal.user, body.get("status"), body.get("comment"))
    return {"newStatus": event_json(event)}


def merge(ctx: Ctx, body: dict | None) -> dict:
    repo = check_write(ctx.principal, ctx.repo(), "merge a pull request")[1]
    oid = ctx.store.merge_pr(repo, _num(ctx), ctx.principal.user, (body or {}).get("comment"))
    return {"mergeCommitId": oid}
