"""Repos: create (with the Hub's first commit), look up, move, delete, visibility; LFS objects per repo.

Why LFS objects are per repo: an LFS upload counts for the repo it was uploaded to, so a commit cannot
name another repo's private content just by knowing its sha256. Names are unique without regard to case
and found without regard to case (as on the Hub); a moved repo's old name is kept as a redirect.
"""

from __future__ import annotations

import time

from local_hub.storage.records import (
    DEFAULT_BRANCH, REPO_TYPES, BadRequest, Conflict, Operation, Repo, git_blob_oid, validate_name,
)

GATED_VALUES = (None, "auto", "manual")

# What the Hub puts into a new repo's first commit; also decides which paths are uploaded as LFS.
DEFAULT_GITATTRIBUTES = """*.7z filter=lfs diff=lfs merge=lfs -text
*.arrow filter=lfs diff=lfs merge=lfs -text
*.bin filter=lfs diff=lfs merge=lfs -text
*.bz2 filter=lfs diff=lfs merge=lfs -text
*.ckpt filter=lfs diff=lfs merge=lfs -text
*.ftz filter=lfs diff=lfs merge=lfs -text
*.gguf filter=lfs diff=lfs merge=lfs -text
*.gz filter=lfs diff=lfs merge=lfs -text
*.h5 filter=lfs diff=lfs merge=lfs -text
*.joblib filter=lfs diff=lfs merge=lfs -text
*.lfs.* filter=lfs diff=lfs merge=lfs -text
*.mlmodel filter=lfs diff=lfs merge=lfs -text
*.model filter=lfs diff=lfs merge=lfs -text
*.msgpack filter=lfs diff=lfs merge=lfs -text
*.npy filter=lfs diff=lfs merge=lfs -text
*.npz filter=lfs diff=lfs merge=lfs -text
*.onnx filter=lfs diff=lfs merge=lfs -text
*.ot filter=lfs diff=lfs merge=lfs -text
*.parquet filter=lfs diff=lfs merge=lfs -text
*.pb filter=lfs diff=lfs merge=lfs -text
*.pickle filter=lfs diff=lfs merge=lfs -text
*.pkl filter=lfs diff=lfs merge=lfs -text
*.pt filter=lfs diff=lfs merge=lfs -text
*.pth filter=lfs diff=lfs merge=lfs -text
*.rar filter=lfs diff=lfs merge=lfs -text
*.safetensors filter=lfs diff=lfs merge=lfs -text
saved_model/**/* filter=lfs diff=lfs merge=lfs -text
*.tar.* filter=lfs diff=lfs merge=lfs -text
*.tar filter=lfs diff=lfs merge=lfs -text
*.tflite filter=lfs diff=lfs merge=lfs -text
*.tgz filter=lfs diff=lfs merge=lfs -text
*.wasm filter=lfs diff=lfs merge=lfs -text
*.xz filter=lfs diff=lfs merge=lfs -text
*.zip filter=lfs diff=lfs merge=lfs -text
*.zst filter=lfs diff=lfs merge=lfs -text
*tfevents* filter=lfs diff=lfs merge=lfs -text
"""


def space_readme(name: str, sdk: str) -> str:
    """The card of a new Space, as the Hub writes it (the SDK lives in its front matter)."""
    return f"---\ntitle: {name}\nemoji: 🚀\ncolorFrom: blue\ncolorTo: green\nsdk: {sdk}\npinned: false\n---\n"


def repo_from_row(row) -> Repo:
    return Repo(row["id"], row["type"], row["namespace"], row["name"], bool(row["private"]), row["sdk"],
                row["created_at"], row["gated"])


class RepoStore:
    """The repo part of `Storage` (needs `db()`, `tx()`, `put_bytes`, `has_blob`, `write_commit`)."""

    def get_repo(self, repo_type: str, repo_id: str) -> Repo | None:
        """The repo named exactly `repo_id`, or None (see `find_repo` for other spellings and old names)."""
        if "/" not in repo_id:
            return None
        namespace, name = repo_id.split("/", 1)
        row = self.db().execute(
            "SELECT * FROM repos WHERE type=? AND namespace=? AND name=?", (repo_type, namespace, name)
        ).fetchone()
        return repo_from_row(row) if row else None

    def find_repo(self, repo_type: str, repo_id: str) -> Repo | None:
        """The repo `repo_id` names in another case, or whose old name it is (moved repo); None otherwise."""
        if "/" not in repo_id:
            return None
        namespace, name = repo_id.split("/", 1)
        db = self.db()
        row = db.execute("SELECT * FROM repos WHERE type=? AND namespace=? COLLATE NOCASE AND name=? COLLATE NOCASE",
                         (repo_type, namespace, name)).fetchone()
        if row is None:
            row = db.execute("SELECT repos.* FROM repo_redirects JOIN repos ON repos.id = repo_redirects.repo "
                             "WHERE repo_redirects.type=? AND repo_redirects.namespace=? COLLATE NOCASE "
                             "AND repo_redirects.name=? COLLATE NOCASE", (repo_type, namespace, name)).fetchone()
        return repo_from_row(row) if row else None

    def _name_taken(self, db, repo_type: str, namespace: str, name: str) -> bool:
        return db.execute("SELECT 1 FROM repos WHERE type=? AND namespace=? COLLATE NOCASE AND name=? COLLATE NOCASE",
                          (repo_type, namespace, name)).fetchone() is not None

    def get_repo_by_pk(self, repo_pk: int) -> Repo | None:
        row = self.db().execute("SELECT * FROM repos WHERE id=?", (repo_pk,)).fetchone()
        return repo_from_row(row) if row else None

    def create_repo(self, repo_type: str, namespace: str, name: str, *, private: bool, author: str,
                    sdk: str | None = None) -> Repo:
        """Create a repo with the Hub's first commit (a `.gitattributes`), so it always has a `main`."""
        if repo_type not in REPO_TYPES:
            raise BadRequest(f"unknown repo type {repo_type!r}: use one of {', '.join(REPO_TYPES)}")
        validate_name(namespace, "namespace")
        validate_name(name, "repo name")
        gitattributes = DEFAULT_GITATTRIBUTES.encode()
        sha = self.put_bytes(gitattributes)
        files = {".gitattributes": Operation("add", ".gitattributes", sha, len(gitattributes), False,
                                             git_blob_oid(gitattributes))}
        if repo_type == "space":
            readme = space_readme(name, sdk or "gradio").encode()
            files["README.md"] = Operation("add", "README.md", self.put_bytes(readme), len(readme), False,
                                           git_blob_oid(readme))
        with self.tx() as db:
            if self._name_taken(db, repo_type, namespace, name):
                raise Conflict(f"You already created this {repo_type} repo: {namespace}/{name}")
            # A new repo takes over a name that used to redirect to a moved one.
            db.execute("DELETE FROM repo_redirects WHERE type=? AND namespace=? COLLATE NOCASE "
                       "AND name=? COLLATE NOCASE", (repo_type, namespace, name))
            cur = db.execute("INSERT INTO repos (type, namespace, name, private, sdk, created_at) VALUES (?,?,?,?,?,?)",
                             (repo_type, namespace, name, int(private), sdk, time.time()))
            repo_pk = cur.lastrowid
            self.write_commit(db, repo_pk, DEFAULT_BRANCH, None, {}, list(files.values()),
                              "initial commit", "", author)
        return self.get_repo(repo_type, f"{namespace}/{name}")

    def duplicate_repo(self, source: Repo, namespace: str, name: str, *, private: bool) -> Repo:
        """A copy of `source` with its full history, branches, tags and LFS objects (not its discussions),
        in one transaction; commit ids stay the same, as in a git clone."""
        validate_name(namespace, "namespace")
        validate_name(name, "repo name")
        with self.tx() as db:
            if self._name_taken(db, source.type, namespace, name):
                raise Conflict(f"You already created this {source.type} repo: {namespace}/{name}")
            db.execute("DELETE FROM repo_redirects WHERE type=? AND namespace=? COLLATE NOCASE "
                       "AND name=? COLLATE NOCASE", (source.type, namespace, name))
            pk = db.execute("INSERT INTO repos (type, namespace, name, private, sdk, created_at) VALUES (?,?,?,?,?,?)",
                            (source.type, namespace, name, int(private), source.sdk, time.time())).lastrowid
            db.execute("INSERT INTO commits SELECT ?, oid, parent, title, message, author, created_at, seq, manifest "
                       "FROM commits WHERE repo=?", (pk, source.id))
            db.execute("INSERT INTO refs SELECT ?, kind, name, target FROM refs WHERE repo=? AND kind IN "
                       "('branch', 'tag')", (pk, source.id))
            db.execute("INSERT INTO lfs_objects (repo, sha256, size, pushed_at) SELECT ?, sha256, size, pushed_at "
                       "FROM lfs_objects WHERE repo=?", (pk, source.id))
        return self.get_repo_by_pk(pk)

    def delete_repo(self, repo: Repo) -> None:
        with self.tx() as db:
            for table in ("commits", "refs", "lfs_objects", "space_settings", "discussions", "discussion_events",
                          "repo_redirects"):
                db.execute(f"DELETE FROM {table} WHERE repo=?", (repo.id,))
            db.execute("DELETE FROM repos WHERE id=?", (repo.id,))
        # Blobs stay: they may be shared with other repos (content addressing); `gc` could reclaim them.

    def move_repo(self, repo: Repo, namespace: str, name: str) -> None:
        validate_name(namespace, "namespace")
        validate_name(name, "repo name")
        with self.tx() as db:
            if self._name_taken(db, repo.type, namespace, name) and (namespace, name) != (repo.namespace, repo.name):
                raise Conflict(f"{repo.type} repo {namespace}/{name} exists already")
            db.execute("DELETE FROM repo_redirects WHERE type=? AND namespace=? COLLATE NOCASE "
                       "AND name=? COLLATE NOCASE", (repo.type, namespace, name))
            db.execute("INSERT OR REPLACE INTO repo_redirects VALUES (?,?,?,?)",
                       (repo.type, repo.namespace, repo.name, repo.id))
            db.execute("UPDATE repos SET namespace=?, name=? WHERE id=?", (namespace, name, repo.id))

    def set_private(self, repo: Repo, private: bool) -> None:
        with self.tx() as db:
            db.execute("UPDATE repos SET private=? WHERE id=?", (int(private), repo.id))

    def set_gated(self, repo: Repo, gated: str | None) -> None:
        if gated not in GATED_VALUES:
            raise BadRequest(f"gated must be 'auto', 'manual' or false, not {gated!r}")
        with self.tx() as db:
            db.execute("UPDATE repos SET gated=? WHERE id=?", (gated, repo.id))

    def list_repos(self, repo_type: str) -> list[Repo]:
        rows = self.db().execute("SELECT * FROM repos WHERE type=? ORDER BY namespace, name", (repo_type,))
        return [repo_from_row(r) for r in rows.fetchall()]
