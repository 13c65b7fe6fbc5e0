"""Refs and commits: resolve a revision, read a commit's history and file listing, write a new commit.

Why a manifest per commit: each commit stores its full file listing (zlib JSON), so reading any
revision is one row, and a commit is one INSERT plus one ref update in the same transaction.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import zlib
from collections import OrderedDict
from typing import Iterable

from local_hub.storage.records import (
    COMMIT_RE, DEFAULT_BRANCH, BadRequest, Commit, Conflict, Entry, EntryNotFound, Operation, ParentMismatch, Repo,
    RevisionNotFound, ref_key, validate_ref_name,
)

MANIFEST_CACHE_SIZE = 256  # commits whose file listing stays decoded in memory (they never change)


def check_file_folder_clashes(files: dict) -> None:
    """A path cannot be both a file and a folder (git could not store it)."""
    folders = set()
    for p in files:
        parts = p.split("/")
        for i in range(1, len(parts)):
            folders.add("/".join(parts[:i]))
    clash = folders.intersection(files)
    if clash:
        raise BadRequest(f"{sorted(clash)[0]!r} would be both a file and a folder")


class CommitStore:
    """The refs-and-commits part of `Storage` (needs `db()`, `tx()`, `has_blob`)."""

    def init_commits(self) -> None:
        self._manifest_cache: OrderedDict[tuple[int, str], dict[str, Entry]] = OrderedDict()
        self._cache_lock = threading.Lock()

    # ------------------------------------------------------------------ refs
    def refs(self, repo: Repo) -> dict[str, dict[str, str]]:
        """{"branch": {name: commit}, "tag": {...}, "pr": {"<num>": commit}}."""
        out: dict[str, dict[str, str]] = {"branch": {}, "tag": {}, "pr": {}}
        for row in self.db().execute("SELECT kind, name, target FROM refs WHERE repo=? ORDER BY name", (repo.id,)):
            out[row["kind"]][row["name"]] = row["target"]
        return out

    def resolve(self, repo: Repo, revision: str) -> str:
        """Branch, tag, `refs/pr/N` (also `refs/heads/x`, `refs/tags/x`) or full commit id -> commit id;
        RevisionNotFound otherwise."""
        db = self.db()
        kind, name = ref_key(revision)
        for kind in ((kind,) if name != revision else ("branch", "tag")):
            row = db.execute("SELECT target FROM refs WHERE repo=? AND kind=? AND name=?",
                             (repo.id, kind, name)).fetchone()
            if row:
                return row["target"]
        if COMMIT_RE.match(revision) and db.execute(
                "SELECT 1 FROM commits WHERE repo=? AND oid=?", (repo.id, revision)).fetchone():
            return revision
        raise RevisionNotFound(f"Invalid rev id: {revision}")

    def create_ref(self, repo: Repo, kind: str, name: str, target: str) -> None:
        validate_ref_name(name)
        with self.tx() as db:
            if db.execute("SELECT 1 FROM refs WHERE repo=? AND kind=? AND name=?", (repo.id, kind, name)).fetchone():
                raise Conflict(f"{'Branch' if kind == 'branch' else 'Tag'} {name} already exists")
            other = "tag" if kind == "branch" else "branch"
            if db.execute("SELECT 1 FROM refs WHERE repo=? AND kind=? AND name=?", (repo.id, other, name)).fetchone():
                raise Conflict(f"A {other} named {name} already exists")
            db.execute("INSERT INTO refs VALUES (?,?,?,?)", (repo.id, kind, name, target))

    def delete_ref(self, repo: Repo, kind: str, name: str) -> None:
        if kind == "branch" and name == DEFAULT_BRANCH:
            raise BadRequest("Cannot delete the default branch 'main'")
        with self.tx() as db:
            cur = db.execute("DELETE FROM refs WHERE repo=? AND kind=? AND name=?", (repo.id, kind, name))
            if cur.rowcount == 0:
                raise RevisionNotFound(f"{kind} {name} not found")

    # ------------------------------------------------------------------ reading commits
    def commit_info(self, repo: Repo, oid: str) -> Commit:
        row = self.db().execute("SELECT oid, parent, title, message, author, created_at FROM commits "
                                "WHERE repo=? AND oid=?", (repo.id, oid)).fetchone()
        if row is None:
            raise RevisionNotFound(f"Invalid rev id: {oid}")
        return Commit(row["oid"], row["parent"], row["title"], row["message"], row["author"], row["created_at"])

    def history(self, repo: Repo, oid: str) -> list[Commit]:
        """Commits reachable from `oid`, newest first (first-parent chain, as all commits here are linear)."""
        out = []
        cur: str | None = oid
        while cur:
            c = self.commit_info(repo, cur)
            out.append(c)
            cur = c.parent
        return out

    def manifest(self, repo: Repo, oid: str) -> dict[str, Entry]:
        """The full file listing of a commit (immutable, so cached)."""
        key = (repo.id, oid)
        with self._cache_lock:
            if key in self._manifest_cache:
                self._manifest_cache.move_to_end(key)
                return self._manifest_cache[key]
        row = self.db().execute("SELECT manifest FROM commits WHERE repo=? AND oid=?", (repo.id, oid)).fetchone()
        if row is None:
            raise RevisionNotFound(f"Invalid rev id: {oid}")
        files = {p: Entry(*v) for p, v in json.loads(zlib.decompress(row["manifest"])).items()}
        with self._cache_lock:
            self._manifest_cache[key] = files
            while len(self._manifest_cache) > MANIFEST_CACHE_SIZE:
                self._manifest_cache.popitem(last=False)
        return files

    # ------------------------------------------------------------------ writing commits
    def commit(self, repo: Repo, branch: str, operations: Iterable[Operation], *, title: str, message: str,
               author: str, parent_commit: str | None = None) -> str:
        """Apply `operations` on top of `branch` (or a PR's `refs/pr/N`) as one new commit; all blobs must
        already be durable."""
        operations = list(operations)
        for op in operations:
            if op.kind == "add" and not self.has_blob(op.sha256 or ""):
                raise BadRequest(f"content of {op.path} was not uploaded (sha256 {op.sha256})")
        kind, name = ref_key(branch)
        if kind == "tag":
            raise BadRequest(f"Cannot commit to {branch!r}: commits go to a branch, not a tag or a commit id")
        with self.tx() as db:
            row = db.execute("SELECT target FROM refs WHERE repo=? AND kind=? AND name=?",
                             (repo.id, kind, name)).fetchone()
            if row is None:
                if db.execute("SELECT 1 FROM refs WHERE repo=? AND kind='tag' AND name=?",
                              (repo.id, branch)).fetchone() or COMMIT_RE.match(branch):
                    raise BadRequest(f"Cannot commit to {branch!r}: commits go to a branch, not a tag or a commit id")
                raise RevisionNotFound(f"Invalid rev id: {branch}")
            head = row["target"]
            if parent_commit is not None and parent_commit != head:
                raise ParentMismatch(
                    f"A commit has happened since {parent_commit}: {branch} is at {head}. "
                    "Please refresh and try again."
                )
            base = self.manifest(repo, head)
            oid = self.write_commit(db, repo.id, name, head, base, operations, title, message, author, kind=kind)
            if kind == "pr":
                self.add_event(db, repo.id, int(name), "commit", author, {"subject": title, "oid": oid})
            return oid

    def super_squash(self, repo: Repo, branch: str, message: str, author: str) -> str:
        """Replace the history of `branch` by one commit with its current files (tags keep their commits)."""
        kind, name = ref_key(branch)
        if kind != "branch":
            raise BadRequest(f"Cannot super-squash {branch!r}: only a branch can be squashed")
        with self.tx() as db:
            row = db.execute("SELECT target FROM refs WHERE repo=? AND kind='branch' AND name=?",
                             (repo.id, name)).fetchone()
            if row is None:
                raise RevisionNotFound(f"Invalid rev id: {branch}")
            files = self.manifest(repo, row["target"])
            ops = [Operation("add", p, e.sha256, e.size, e.lfs, e.oid) for p, e in files.items()]
            return self.write_commit(db, repo.id, name, None, {}, ops, message, "", author)

    def write_commit(self, db, repo_pk: int, branch: str, head: str | None, base: dict[str, Entry],
                     operations: list[Operation], title: str, message: str, author: str, kind: str = "branch") -> str:
        """Inside an open transaction: the new commit row and the ref (`kind`, `branch`) pointing at it;
        returns its id."""
        files = dict(base)
        changed: dict[str, Operation] = {}
        for op in operations:
            if op.kind == "add":
                files.pop(op.path, None)
                changed[op.path] = op
                files[op.path] = None  # type: ignore[assignment]  # filled below, once the oid is known
            elif op.kind == "delete_file":
                if op.path not in files:
                    raise EntryNotFound(f"A file with this name doesn't exist: {op.path}")
                del files[op.path]
                changed.pop(op.path, None)
            elif op.kind == "delete_folder":
                prefix = op.path.rstrip("/") + "/"
                doomed = [p for p in files if p.startswith(prefix)]
                if not doomed:
                    raise EntryNotFound(f"A folder with this name doesn't exist: {op.path}")
                for p in doomed:
                    del files[p]
                    changed.pop(p, None)
            else:  # pragma: no cover - the HTTP side only builds the three kinds
                raise BadRequest(f"unknown operation {op.kind!r}")
        check_file_folder_clashes(files)
        tree_sha = hashlib.sha1(json.dumps(sorted(
            (p, (changed[p].oid if p in changed else files[p].oid)) for p in files)).encode()).hexdigest()
        created = time.time()
        seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM commits WHERE repo=?", (repo_pk,)).fetchone()[0]
        body = f"tree {tree_sha}\nparent {head or ''}\nauthor {author} {created:.6f}\nseq {seq}\n\n{title}\n\n{message}"
        oid = hashlib.sha1(f"commit {len(body)}\0{body}".encode()).hexdigest()
        for path, op in changed.items():
            files[path] = Entry(op.sha256, op.size, op.lfs, op.oid, oid)
        manifest = zlib.compress(json.dumps({p: [e.sha256, e.size, e.lfs, e.oid, e.last_commit]
                                             for p, e in files.items()}).encode())
        db.execute("INSERT INTO commits VALUES (?,?,?,?,?,?,?,?,?)",
                   (repo_pk, oid, head, title, message, author, created, seq, manifest))
        db.execute("INSERT OR REPLACE INTO refs VALUES (?, ?, ?, ?)", (repo_pk, kind, branch, oid))
        return oid
