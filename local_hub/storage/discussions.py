"""Discussions and pull requests: numbered threads of events; a PR's files live on the ref `refs/pr/<num>`.

Why a PR is a ref: the clients write to a PR with `revision="refs/pr/N"` and read it the same way, so a
PR is one more ref beside branches and tags; merging applies its changes since the merge base onto the
target branch as one commit, and refuses when the branch changed the same files meanwhile.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import Iterable

from local_hub.storage.records import (
    DEFAULT_BRANCH, BadRequest, Conflict, Discussion, DiscussionEvent, Entry, NotFound, Operation, ParentMismatch,
    Repo, RevisionNotFound,
)

STATUSES = ("open", "closed", "merged", "draft")


def discussion_from_row(row) -> Discussion:
    return Discussion(row["repo"], row["num"], bool(row["is_pr"]), row["title"], row["status"], row["author"],
                      row["created_at"], row["base_branch"], row["base_commit"], row["merge_commit"])


def changes(old: dict[str, Entry], new: dict[str, Entry]) -> dict[str, Entry | None]:
    """Paths whose content differs between two file listings: the new entry, or None if deleted."""
    out: dict[str, Entry | None] = {}
    for path in old.keys() | new.keys():
        a, b = old.get(path), new.get(path)
        if (a and (a.sha256, a.lfs)) != (b and (b.sha256, b.lfs)):
            out[path] = b
    return out


class DiscussionStore:
    """The discussions part of `Storage` (needs `db()`, `tx()`, `manifest`, `write_commit`)."""

    # ------------------------------------------------------------------ events
    def add_event(self, db, repo_pk: int, num: int, kind: str, author: str, data: dict) -> DiscussionEvent:
        """Inside an open transaction: append one event to discussion `num`."""
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM discussion_events WHERE repo=? AND num=?",
                         (repo_pk, num)).fetchone()[0]
        event = DiscussionEvent(secrets.token_hex(12), kind, author, time.time(), data)
        db.execute("INSERT INTO discussion_events VALUES (?,?,?,?,?,?,?,?)",
                   (repo_pk, num, seq, event.id, kind, author, event.created_at, json.dumps(data)))
        return event

    def events(self, repo: Repo, num: int) -> list[DiscussionEvent]:
        rows = self.db().execute("SELECT * FROM discussion_events WHERE repo=? AND num=? ORDER BY seq",
                                 (repo.id, num)).fetchall()
        return [DiscussionEvent(r["id"], r["type"], r["author"], r["created_at"], json.loads(r["data"])) for r in rows]

    # ------------------------------------------------------------------ threads
    def _open_thread(self, db, repo: Repo, title: str, description: str, author: str, is_pr: bool,
                     base_branch: str | None, start: str | None) -> int:
        if not isinstance(title, str) or not title.strip():
            raise BadRequest("a discussion needs a non-empty 'title'")
        num = db.execute("SELECT COALESCE(MAX(num), 0) + 1 FROM discussions WHERE repo=?", (repo.id,)).fetchone()[0]
        db.execute("INSERT INTO discussions VALUES (?,?,?,?,?,?,?,?,?,?)",
                   (repo.id, num, int(is_pr), title.strip(), "open", author, time.time(),
                    base_branch if is_pr else None, start if is_pr else None, None))
        if is_pr:
            db.execute("INSERT INTO refs VALUES (?, 'pr', ?, ?)", (repo.id, str(num), start))
        self.add_event(db, repo.id, num, "comment", author,
                       {"edited": False, "hidden": False, "latest": {"raw": description or ""}})
        return num

    def create_discussion(self, repo: Repo, title: str, description: str, author: str, *, pull_request: bool,
                          base_branch: str = DEFAULT_BRANCH) -> int:
        """A new discussion, or a PR whose ref starts at the head of `base_branch`; returns its number."""
        with self.tx() as db:
            start = self._branch_head(db, repo, base_branch) if pull_request else None
            return self._open_thread(db, repo, title, description, author, pull_request, base_branch, start)

    def commit_as_pr(self, repo: Repo, base_branch: str, operations: Iterable[Operation], *, title: str,
                     message: str, author: str, parent_commit: str | None = None) -> tuple[int, str]:
        """`create_pr=1`: open a PR from `parent_commit` (default: the branch head) and commit onto it, in one
        transaction, so a refused commit leaves no empty PR. Returns (PR number, commit id)."""
        operations = list(operations)
        for op in operations:
            if op.kind == "add" and not self.has_blob(op.sha256 or ""):
                raise BadRequest(f"content of {op.path} was not uploaded (sha256 {op.sha256})")
        with self.tx() as db:
            head = self._branch_head(db, repo, base_branch)
            start = head
            if parent_commit is not None:
                if not db.execute("SELECT 1 FROM commits WHERE repo=? AND oid=?", (repo.id, parent_commit)).fetchone():
                    raise ParentMismatch(f"parentCommit {parent_commit} is not a commit of this repo")
                start = parent_commit
            num = self._open_thread(db, repo, title, message, author, True, base_branch, start)
            oid = self.write_commit(db, repo.id, str(num), start, self.manifest(repo, start), operations, title,
                                    message, author, kind="pr")
            self.add_event(db, repo.id, num, "commit", author, {"subject": title, "oid": oid})
            return num, oid

    def _branch_head(self, db, repo: Repo, branch: str) -> str:
        row = db.execute("SELECT target FROM refs WHERE repo=? AND kind='branch' AND name=?",
                         (repo.id, branch)).fetchone()
        if row is None:
            raise RevisionNotFound(f"Invalid rev id: {branch} (pull requests target a branch)")
        return row["target"]

    def get_discussion(self, repo: Repo, num: int) -> Discussion:
        row = self.db().execute("SELECT * FROM discussions WHERE repo=? AND num=?", (repo.id, num)).fetchone()
        if row is None:
            raise NotFound(f"Discussion #{num} not found in {repo.repo_id}")
        return discussion_from_row(row)

    def list_discussions(self, repo: Repo, *, kind: str | None = None, status: str | None = None,
                         author: str | None = None) -> list[Discussion]:
        """Newest first, as the Hub lists them; `kind` is "discussion" or "pull_request"."""
        query, args = "SELECT * FROM discussions WHERE repo=?", [repo.id]
        if kind in ("discussion", "pull_request"):
            query += " AND is_pr=?"
            args.append(int(kind == "pull_request"))
        if status is not None:
            query += " AND status=?"
            args.append(status)
        if author is not None:
            query += " AND author=?"
            args.append(author)
        return [discussion_from_row(r) for r in self.db().execute(query + " ORDER BY num DESC", args).fetchall()]

    def comment(self, repo: Repo, num: int, author: str, text: str) -> DiscussionEvent:
        if not isinstance(text, str) or not text.strip():
            raise BadRequest("a comment needs a non-empty 'comment'")
        self.get_discussion(repo, num)
        with self.tx() as db:
            return self.add_event(db, repo.id, num, "comment", author,
                                  {"edited": False, "hidden": False, "latest": {"raw": text}})

    def rename_discussion(self, repo: Repo, num: int, author: str, title: str) -> DiscussionEvent:
        if not isinstance(title, str) or not title.strip():
            raise BadRequest("'title' must be a non-empty string")
        old = self.get_discussion(repo, num).title
        with self.tx() as db:
            db.execute("UPDATE discussions SET title=? WHERE repo=? AND num=?", (title.strip(), repo.id, num))
            return self.add_event(db, repo.id, num, "title-change", author, {"from": old, "to": title.strip()})

    def set_status(self, repo: Repo, num: int, author: str, status: str, comment: str | None = None
                   ) -> DiscussionEvent:
        """Open or close a thread (merging is `merge_pr`); a merged PR stays merged."""
        if status not in ("open", "closed"):
            raise BadRequest(f"status must be 'open' or 'closed', not {status!r}")
        d = self.get_discussion(repo, num)
        if d.status == "merged":
            raise BadRequest(f"Pull request #{num} is merged: its status cannot change")
        with self.tx() as db:
            db.execute("UPDATE discussions SET status=? WHERE repo=? AND num=?", (status, repo.id, num))
            if comment:
                self.add_event(db, repo.id, num, "comment", author,
                               {"edited": False, "hidden": False, "latest": {"raw": comment}})
            return self.add_event(db, repo.id, num, "status-change", author, {"status": status})

    # ------------------------------------------------------------------ pull requests
    def pr_changes(self, repo: Repo, d: Discussion) -> tuple[dict[str, Entry | None], list[str]]:
        """(the PR's changes since its merge base, the files the target branch changed differently since)."""
        refs = self.refs(repo)
        base = self.manifest(repo, d.base_commit)
        ours = changes(base, self.manifest(repo, refs["pr"][str(d.num)]))
        head = refs["branch"].get(d.base_branch)
        if head is None:
            return ours, sorted(ours)
        theirs = changes(base, self.manifest(repo, head))
        clash = sorted(p for p in ours.keys() & theirs.keys()
                       if (ours[p] and (ours[p].sha256, ours[p].lfs)) != (theirs[p] and (theirs[p].sha256, theirs[p].lfs)))
        return ours, clash

    def merge_pr(self, repo: Repo, num: int, author: str, comment: str | None = None) -> str:
        """Apply an open PR's changes onto its target branch as one commit; Conflict if files clash."""
        with self.tx() as db:  # status, clash check and commit see one state: no double merge, no lost update
            d = self.get_discussion(repo, num)
            if not d.is_pr:
                raise BadRequest(f"#{num} is a discussion, not a pull request")
            if d.status not in ("open", "draft"):
                raise BadRequest(f"Pull request #{num} is {d.status}: only an open pull request can be merged")
            ours, clash = self.pr_changes(repo, d)
            if clash:
                raise Conflict(f"Pull request #{num} cannot be merged: {d.base_branch} changed the same files "
                               f"({', '.join(clash[:10])}); update the pull request first")
            if not ours:
                raise BadRequest(f"Pull request #{num} has no changes to merge")
            head = self._branch_head(db, repo, d.base_branch)
            files = self.manifest(repo, head)
            ops = [Operation("add", p, e.sha256, e.size, e.lfs, e.oid) if e else Operation("delete_file", p)
                   for p, e in sorted(ours.items()) if e or p in files]
            oid = self.write_commit(db, repo.id, d.base_branch, head, files, ops, d.title,
                                    f"Merged pull request #{num} ({d.ref}).", author)
            db.execute("UPDATE discussions SET status='merged', merge_commit=? WHERE repo=? AND num=?",
                       (oid, repo.id, num))
            if comment:
                self.add_event(db, repo.id, num, "comment", author,
                               {"edited": False, "hidden": False, "latest": {"raw": comment}})
            self.add_event(db, repo.id, num, "status-change", author, {"status": "merged"})
            return oid
