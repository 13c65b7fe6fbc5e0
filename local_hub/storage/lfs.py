"""LFS objects per repo: registered on upload, listed and permanently deleted (`list_lfs_files`, ...).

Why registration per repo: a commit may name an LFS object only once it was uploaded to that repo. Why
deletion refuses objects that a ref still shows: the Hub's deletion is for content no branch, tag or PR
uses any more; a file at a ref head must be deleted (or the branch squashed) first.
"""

from __future__ import annotations

import os
import time

from local_hub.storage.records import BadRequest, Repo


class LfsStore:
    """The LFS-object part of `Storage` (needs `db()`, `tx()`, `has_blob`, `blob_path`, `refs`, `manifest`)."""

    def lfs_known(self, repo: Repo, sha256: str) -> bool:
        """An LFS object counts as present for a repo only once it was uploaded *to that repo*."""
        row = self.db().execute("SELECT 1 FROM lfs_objects WHERE repo=? AND sha256=?", (repo.id, sha256)).fetchone()
        return row is not None and self.has_blob(sha256)

    def lfs_register(self, repo: Repo, sha256: str, size: int) -> None:
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO lfs_objects (repo, sha256, size, pushed_at) VALUES (?,?,?,?)",
                       (repo.id, sha256, size, time.time()))

    def lfs_files(self, repo: Repo) -> list[dict]:
        """Each LFS object of the repo with a file name that uses it (newest commit first) and the ref."""
        names: dict[str, tuple[str, str | None]] = {}
        refs = self.refs(repo)
        heads = [(f"refs/heads/{n}", t) for n, t in refs["branch"].items()] + \
                [(f"refs/tags/{n}", t) for n, t in refs["tag"].items()] + \
                [(f"refs/pr/{n}", t) for n, t in refs["pr"].items()]
        for ref, target in heads:
            for path, e in self.manifest(repo, target).items():
                if e.lfs:
                    names.setdefault(e.sha256, (path, ref))
        for row in self.db().execute("SELECT oid FROM commits WHERE repo=? ORDER BY seq DESC", (repo.id,)):
            for path, e in self.manifest(repo, row["oid"]).items():
                if e.lfs:
                    names.setdefault(e.sha256, (path, None))
        rows = self.db().execute("SELECT sha256, size, pushed_at FROM lfs_objects WHERE repo=? ORDER BY pushed_at, sha256",
                                 (repo.id,)).fetchall()
        out = []
        for r in rows:
            filename, ref = names.get(r["sha256"], ("", None))
            out.append({"sha256": r["sha256"], "size": r["size"], "pushed_at": r["pushed_at"] or 0.0,
                        "filename": filename, "ref": ref})
        return out

    def lfs_delete(self, repo: Repo, shas: list[str]) -> None:
        """Forget the repo's LFS objects `shas`; their bytes go too unless another repo uses the same content."""
        refs = self.refs(repo)
        in_use = {}
        for kind, prefix in (("branch", "refs/heads/"), ("tag", "refs/tags/"), ("pr", "refs/pr/")):
            for name, target in refs[kind].items():
                for path, e in self.manifest(repo, target).items():
                    in_use.setdefault(e.sha256, f"{path} at {prefix}{name}")
        for sha in shas:
            if sha in in_use:
                raise BadRequest(f"LFS object {sha} is still used by {in_use[sha]}: delete that file (or squash the "
                                 "history) first, then delete the object")
        with self.tx() as db:
            for sha in shas:
                cur = db.execute("DELETE FROM lfs_objects WHERE repo=? AND sha256=?", (repo.id, sha))
                if cur.rowcount == 0:
                    raise BadRequest(f"LFS object {sha} is not stored in {repo.repo_id}")
        for sha in shas:
            if not self._blob_used_elsewhere(repo, sha):
                try:
                    os.unlink(self.blob_path(sha))
                except FileNotFoundError:
                    pass

    def _blob_used_elsewhere(self, repo: Repo, sha: str) -> bool:
        db = self.db()
        if db.execute("SELECT 1 FROM lfs_objects WHERE sha256=? AND repo<>?", (sha, repo.id)).fetchone():
            return True
        for row in db.execute("SELECT repo, oid FROM commits WHERE repo<>?", (repo.id,)).fetchall():
            other = self.get_repo_by_pk(row["repo"])
            if other is not None and any(e.sha256 == sha for e in self.manifest(other, row["oid"]).values()):
                return True
        return False
