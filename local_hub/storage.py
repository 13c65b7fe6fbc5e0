"""Durable storage for the local Hub: content-addressed blobs on disk plus one SQLite database.

Why this shape: file contents are immutable and deduplicated by sha256, so they can be written
(temp file, fsync, rename) long before a commit and never change afterwards; everything that must
change atomically (refs, commits, file listings, users, tokens) lives in SQLite (WAL, synchronous=FULL),
so a commit is one transaction that either happened completely or not at all. A server killed at any
moment restarts with every repo at its last completed commit. No HTTP here: `app.py` maps requests
onto these methods.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
import tempfile
import threading
import time
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

REPO_TYPES = ("model", "dataset", "space")
DEFAULT_BRANCH = "main"
DEFAULT_USER = "admin"
DEFAULT_ORG = "org"
LFS_POINTER_VERSION = "https://git-lfs.github.com/spec/v1"
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

NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
REF_RE = re.compile(r"^(?!/)(?!.*//)(?!.*\.\.)(?!.*/$)[A-Za-z0-9._/-]{1,200}$")
MAX_PATH_LEN = 1000


class StorageError(Exception):
    """Base of the errors `app.py` turns into Hub-shaped HTTP answers."""


class BadRequest(StorageError):
    """Invalid input (path, name, operation): nothing was written."""


class Conflict(StorageError):
    """The thing to create exists already (repo, branch, tag)."""


class NotFound(StorageError):
    """Base for missing things; `kind` picks the Hub's X-Error-Code."""

    kind = "Entry"


class RevisionNotFound(NotFound):
    kind = "Revision"


class EntryNotFound(NotFound):
    kind = "Entry"


class ParentMismatch(StorageError):
    """`parentCommit` is not the branch head any more (someone committed in between)."""


def now_iso(ts: float | None = None) -> str:
    ts = time.time() if ts is None else ts
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts * 1000) % 1000:03d}Z"


def git_blob_oid(data: bytes) -> str:
    """The git object id of a file, which the Hub reports as `oid`/`blobId` for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version {LFS_POINTER_VERSION}\noid sha256:{sha256}\nsize {size}\n".encode()


def validate_path(path: str) -> str:
    """Reject paths that could escape the repo or that git would refuse (`..`, absolute, `.git/`)."""
    if not isinstance(path, str) or not path:
        raise BadRequest("path must be a non-empty string")
    if len(path) > MAX_PATH_LEN:
        raise BadRequest(f"path is longer than {MAX_PATH_LEN} characters: {path[:50]}...")
    if path.startswith("/") or "\\" in path or "\0" in path or re.match(r"^[A-Za-z]:", path):
        raise BadRequest(f"invalid path {path!r}: must be relative, with '/' separators")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise BadRequest(f"invalid path {path!r}: empty, '.' or '..' segments are not allowed")
    if parts[0] == ".git" or any(p == ".git" for p in parts):
        raise BadRequest(f"invalid path {path!r}: '.git' is reserved")
    return path


def validate_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name) or "--" in name or ".." in name:
        raise BadRequest(
            f"invalid {what} {name!r}: use letters, digits, '-', '_', '.' (max 96, no '--' or '..', "
            "must start and end with a letter or digit)"
        )
    return name


def validate_ref_name(name: str) -> str:
    if not REF_RE.match(name or "") or COMMIT_RE.match(name) or name.startswith("refs/"):
        raise BadRequest(f"invalid branch or tag name {name!r}")
    return name


@dataclass(frozen=True)
class Entry:
    """One file of a commit's snapshot."""

    sha256: str
    size: int
    lfs: bool
    oid: str          # git blob id (of the pointer for LFS files), as the Hub reports it
    last_commit: str  # commit that last changed this path


@dataclass(frozen=True)
class Repo:
    id: int
    type: str
    namespace: str
    name: str
    private: bool
    sdk: str | None
    created_at: float

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    author: str
    created_at: float


@dataclass
class Operation:
    """One commit operation, already validated; `sha256` points at a durable blob for additions."""

    kind: str                      # "add" | "delete_file" | "delete_folder"
    path: str
    sha256: str | None = None
    size: int = 0
    lfs: bool = False
    oid: str | None = None


@dataclass(frozen=True)
class TokenInfo:
    user: str
    role: str
    name: str
    created_at: float


SCHEMA = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, is_org INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS members (org TEXT NOT NULL, user TEXT NOT NULL, PRIMARY KEY (org, user));
CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, user TEXT NOT NULL, role TEXT NOT NULL,
    name TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS repos (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT NOT NULL,
    namespace TEXT NOT NULL, name TEXT NOT NULL, private INTEGER NOT NULL, sdk TEXT,
    created_at REAL NOT NULL, UNIQUE (type, namespace, name));
CREATE TABLE IF NOT EXISTS commits (repo INTEGER NOT NULL, oid TEXT NOT NULL, parent TEXT,
    title TEXT NOT NULL, message TEXT NOT NULL, author TEXT NOT NULL, created_at REAL NOT NULL,
    seq INTEGER NOT NULL, manifest BLOB NOT NULL, PRIMARY KEY (repo, oid));
CREATE TABLE IF NOT EXISTS refs (repo INTEGER NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    target TEXT NOT NULL, PRIMARY KEY (repo, kind, name));
CREATE TABLE IF NOT EXISTS lfs_objects (repo INTEGER NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    PRIMARY KEY (repo, sha256));
CREATE TABLE IF NOT EXISTS space_settings (repo INTEGER NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL,
    value TEXT NOT NULL, description TEXT, updated_at REAL NOT NULL, PRIMARY KEY (repo, kind, key));
"""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write a small file so that readers see the old or the new content, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class BlobWriter:
    """Streams one blob to a temp file while hashing it; `finish` makes it durable under its sha256."""

    def __init__(self, store: "Storage"):
        self._store = store
        fd, self._tmp = tempfile.mkstemp(dir=store.tmp_dir, prefix="blob-")
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def finish(self) -> str:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        sha = self._hash.hexdigest()
        self._store._install_blob(self._tmp, sha)
        return sha

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)


class Storage:
    """All persistent state of one server. Thread-safe: one SQLite connection per thread."""

    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir)
        self.blob_dir = self.data_dir / "blobs"
        self.tmp_dir = self.data_dir / "tmp"
        self.db_path = self.data_dir / "hub.sqlite3"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self.blob_dir.mkdir(exist_ok=True)
        self.tmp_dir.mkdir(exist_ok=True)
        self._local = threading.local()
        self._manifest_cache: OrderedDict[tuple[int, str], dict[str, Entry]] = OrderedDict()
        self._cache_lock = threading.Lock()
        self._db().executescript(SCHEMA)  # executescript manages its own transaction

    # ------------------------------------------------------------------ plumbing
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.db_path, isolation_level=None, timeout=60, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    class _Tx:
        def __init__(self, db: sqlite3.Connection):
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            # IMMEDIATE takes the write lock up front: concurrent commits queue instead of failing late.
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, exc, tb) -> None:
            self.db.execute("ROLLBACK" if exc_type else "COMMIT")

    def _tx(self) -> "Storage._Tx":
        return Storage._Tx(self._db())

    def clean_tmp(self) -> int:
        """Remove half-written uploads left by a crash (they were never referenced by any commit)."""
        n = 0
        for p in self.tmp_dir.iterdir():
            p.unlink(missing_ok=True)
            n += 1
        return n

    # ------------------------------------------------------------------ blobs
    def blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256[:2] / sha256[2:]

    def has_blob(self, sha256: str) -> bool:
        return bool(SHA256_RE.match(sha256 or "")) and self.blob_path(sha256).is_file()

    def _install_blob(self, tmp: str, sha256: str) -> None:
        target = self.blob_path(sha256)
        if target.exists():
            os.unlink(tmp)
            return
        target.parent.mkdir(exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
        _fsync_dir(target.parent)

    def blob_writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put_bytes(self, data: bytes) -> str:
        writer = self.blob_writer()
        try:
            writer.write(data)
            return writer.finish()
        except BaseException:
            writer.abort()
            raise

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()

    # ------------------------------------------------------------------ users and tokens
    def ensure_user(self, name: str, is_org: bool = False) -> None:
        validate_name(name, "org name" if is_org else "user name")
        with self._tx() as db:
            row = db.execute("SELECT is_org FROM users WHERE name=?", (name,)).fetchone()
            if row is None:
                db.execute("INSERT INTO users VALUES (?,?,?)", (name, int(is_org), time.time()))
            elif bool(row["is_org"]) != is_org:
                raise Conflict(f"{name!r} exists already as {'an org' if row['is_org'] else 'a user'}")

    def add_member(self, org: str, user: str) -> None:
        self.ensure_user(org, is_org=True)
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO members VALUES (?,?)", (org, user))

    def is_org(self, name: str) -> bool:
        row = self._db().execute("SELECT is_org FROM users WHERE name=?", (name,)).fetchone()
        return bool(row and row["is_org"])

    def namespace_exists(self, name: str) -> bool:
        return self._db().execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone() is not None

    def orgs_of(self, user: str) -> list[str]:
        rows = self._db().execute("SELECT org FROM members WHERE user=? ORDER BY org", (user,)).fetchall()
        return [r["org"] for r in rows]

    def create_token(self, user: str, role: str, name: str = "token") -> str:
        """Make a new token for `user` and return it; only its sha256 is stored."""
        if role not in ("read", "write"):
            raise BadRequest(f"role must be 'read' or 'write', not {role!r}")
        token = "hf_" + secrets.token_urlsafe(30).replace("-", "a").replace("_", "b")
        with self._tx() as db:
            db.execute("INSERT INTO tokens VALUES (?,?,?,?,?)", (_token_hash(token), user, role, name, time.time()))
        return token

    def lookup_token(self, token: str) -> TokenInfo | None:
        row = self._db().execute("SELECT * FROM tokens WHERE hash=?", (_token_hash(token),)).fetchone()
        return TokenInfo(row["user"], row["role"], row["name"], row["created_at"]) if row else None

    def bootstrap(self) -> str | None:
        """First start: user `admin` in org `org`, its write token in DATA_DIR/token (mode 600)."""
        token_file = self.data_dir / "token"
        if self.namespace_exists(DEFAULT_USER) and token_file.exists():
            return None
        self.ensure_user(DEFAULT_USER)
        self.add_member(DEFAULT_ORG, DEFAULT_USER)
        token = self.create_token(DEFAULT_USER, "write", name="default")
        atomic_write(token_file, (token + "\n").encode(), mode=0o600)
        return token

    def server_secret(self) -> bytes:
        """Key that signs LFS upload URLs (the LFS PUT carries no Authorization header)."""
        path = self.data_dir / "secret"
        if not path.exists():
            atomic_write(path, secrets.token_bytes(32), mode=0o600)
        return path.read_bytes()

    # ------------------------------------------------------------------ repos
    def _repo_from_row(self, row) -> Repo:
        return Repo(row["id"], row["type"], row["namespace"], row["name"], bool(row["private"]), row["sdk"],
                    row["created_at"])

    def get_repo(self, repo_type: str, repo_id: str) -> Repo | None:
        if "/" not in repo_id:
            return None
        namespace, name = repo_id.split("/", 1)
        row = self._db().execute(
            "SELECT * FROM repos WHERE type=? AND namespace=? AND name=?", (repo_type, namespace, name)
        ).fetchone()
        return self._repo_from_row(row) if row else None

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
            readme = _space_readme(name, sdk or "gradio").encode()
            files["README.md"] = Operation("add", "README.md", self.put_bytes(readme), len(readme), False,
                                           git_blob_oid(readme))
        with self._tx() as db:
            if db.execute("SELECT 1 FROM repos WHERE type=? AND namespace=? AND name=?",
                          (repo_type, namespace, name)).fetchone():
                raise Conflict(f"You already created this {repo_type} repo: {namespace}/{name}")
            cur = db.execute("INSERT INTO repos (type, namespace, name, private, sdk, created_at) VALUES (?,?,?,?,?,?)",
                             (repo_type, namespace, name, int(private), sdk, time.time()))
            repo_pk = cur.lastrowid
            self._write_commit(db, repo_pk, DEFAULT_BRANCH, None, {}, list(files.values()),
                               "initial commit", "", author)
        return self.get_repo(repo_type, f"{namespace}/{name}")

    def delete_repo(self, repo: Repo) -> None:
        with self._tx() as db:
            for table in ("commits", "refs", "lfs_objects", "space_settings"):
                db.execute(f"DELETE FROM {table} WHERE repo=?", (repo.id,))
            db.execute("DELETE FROM repos WHERE id=?", (repo.id,))
        # Blobs stay: they may be shared with other repos (content addressing); `gc` could reclaim them.

    def move_repo(self, repo: Repo, namespace: str, name: str) -> None:
        validate_name(namespace, "namespace")
        validate_name(name, "repo name")
        with self._tx() as db:
            if db.execute("SELECT 1 FROM repos WHERE type=? AND namespace=? AND name=?",
                          (repo.type, namespace, name)).fetchone():
                raise Conflict(f"{repo.type} repo {namespace}/{name} exists already")
            db.execute("UPDATE repos SET namespace=?, name=? WHERE id=?", (namespace, name, repo.id))

    def set_private(self, repo: Repo, private: bool) -> None:
        with self._tx() as db:
            db.execute("UPDATE repos SET private=? WHERE id=?", (int(private), repo.id))

    def list_repos(self, repo_type: str) -> list[Repo]:
        rows = self._db().execute("SELECT * FROM repos WHERE type=? ORDER BY namespace, name", (repo_type,))
        return [self._repo_from_row(r) for r in rows.fetchall()]

    # ------------------------------------------------------------------ refs and commits
    def refs(self, repo: Repo) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {"branch": {}, "tag": {}}
        for row in self._db().execute("SELECT kind, name, target FROM refs WHERE repo=? ORDER BY name", (repo.id,)):
            out[row["kind"]][row["name"]] = row["target"]
        return out

    def resolve(self, repo: Repo, revision: str) -> str:
        """Branch, tag or full commit id -> commit id; RevisionNotFound otherwise."""
        db = self._db()
        for kind in ("branch", "tag"):
            row = db.execute("SELECT target FROM refs WHERE repo=? AND kind=? AND name=?",
                             (repo.id, kind, revision)).fetchone()
            if row:
                return row["target"]
        if COMMIT_RE.match(revision) and db.execute(
                "SELECT 1 FROM commits WHERE repo=? AND oid=?", (repo.id, revision)).fetchone():
            return revision
        raise RevisionNotFound(f"Invalid rev id: {revision}")

    def commit_info(self, repo: Repo, oid: str) -> Commit:
        row = self._db().execute("SELECT oid, parent, title, message, author, created_at FROM commits "
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
        row = self._db().execute("SELECT manifest FROM commits WHERE repo=? AND oid=?", (repo.id, oid)).fetchone()
        if row is None:
            raise RevisionNotFound(f"Invalid rev id: {oid}")
        files = {p: Entry(*v) for p, v in json.loads(zlib.decompress(row["manifest"])).items()}
        with self._cache_lock:
            self._manifest_cache[key] = files
            while len(self._manifest_cache) > 256:
                self._manifest_cache.popitem(last=False)
        return files

    def create_ref(self, repo: Repo, kind: str, name: str, target: str) -> None:
        validate_ref_name(name)
        with self._tx() as db:
            if db.execute("SELECT 1 FROM refs WHERE repo=? AND kind=? AND name=?", (repo.id, kind, name)).fetchone():
                raise Conflict(f"{'Branch' if kind == 'branch' else 'Tag'} {name} already exists")
            other = "tag" if kind == "branch" else "branch"
            if db.execute("SELECT 1 FROM refs WHERE repo=? AND kind=? AND name=?", (repo.id, other, name)).fetchone():
                raise Conflict(f"A {other} named {name} already exists")
            db.execute("INSERT INTO refs VALUES (?,?,?,?)", (repo.id, kind, name, target))

    def delete_ref(self, repo: Repo, kind: str, name: str) -> None:
        if kind == "branch" and name == DEFAULT_BRANCH:
            raise BadRequest("Cannot delete the default branch 'main'")
        with self._tx() as db:
            cur = db.execute("DELETE FROM refs WHERE repo=? AND kind=? AND name=?", (repo.id, kind, name))
            if cur.rowcount == 0:
                raise RevisionNotFound(f"{kind} {name} not found")

    # ------------------------------------------------------------------ LFS objects
    def lfs_known(self, repo: Repo, sha256: str) -> bool:
        """An LFS object counts as present for a repo only once it was uploaded *to that repo*."""
        row = self._db().execute("SELECT 1 FROM lfs_objects WHERE repo=? AND sha256=?", (repo.id, sha256)).fetchone()
        return row is not None and self.has_blob(sha256)

    def lfs_register(self, repo: Repo, sha256: str, size: int) -> None:
        with self._tx() as db:
            db.execute("INSERT OR IGNORE INTO lfs_objects VALUES (?,?,?)", (repo.id, sha256, size))

    # ------------------------------------------------------------------ commits
    def commit(self, repo: Repo, branch: str, operations: Iterable[Operation], *, title: str, message: str,
               author: str, parent_commit: str | None = None) -> str:
        """Apply `operations` on top of `branch` as one new commit; all blobs must already be durable."""
        operations = list(operations)
        for op in operations:
            if op.kind == "add" and not self.has_blob(op.sha256 or ""):
                raise BadRequest(f"content of {op.path} was not uploaded (sha256 {op.sha256})")
        with self._tx() as db:
            row = db.execute("SELECT target FROM refs WHERE repo=? AND kind='branch' AND name=?",
                             (repo.id, branch)).fetchone()
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
            return self._write_commit(db, repo.id, branch, head, base, operations, title, message, author)

    def _write_commit(self, db, repo_pk: int, branch: str, head: str | None, base: dict[str, Entry],
                      operations: list[Operation], title: str, message: str, author: str) -> str:
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
            else:  # pragma: no cover - app.py only builds the three kinds
                raise BadRequest(f"unknown operation {op.kind!r}")
        _check_file_folder_clashes(files)
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
        db.execute("INSERT OR REPLACE INTO refs VALUES (?, 'branch', ?, ?)", (repo_pk, branch, oid))
        return oid

    # ------------------------------------------------------------------ Space variables and secrets
    def space_settings(self, repo: Repo, kind: str) -> dict[str, dict]:
        rows = self._db().execute("SELECT key, value, description, updated_at FROM space_settings "
                                  "WHERE repo=? AND kind=? ORDER BY key", (repo.id, kind)).fetchall()
        return {r["key"]: {"value": r["value"], "description": r["description"], "updatedAt": now_iso(r["updated_at"])}
                for r in rows}

    def set_space_setting(self, repo: Repo, kind: str, key: str, value: str, description: str | None) -> None:
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", key or ""):
            raise BadRequest(f"invalid {kind} key {key!r}: use letters, digits and '_' (an environment variable name)")
        if not isinstance(value, str):
            raise BadRequest(f"{kind} value must be a string")
        with self._tx() as db:
            db.execute("INSERT OR REPLACE INTO space_settings VALUES (?,?,?,?,?,?)",
                       (repo.id, kind, key, value, description, time.time()))

    def delete_space_setting(self, repo: Repo, kind: str, key: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM space_settings WHERE repo=? AND kind=? AND key=?", (repo.id, kind, key))


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _check_file_folder_clashes(files: dict) -> None:
    """A path cannot be both a file and a folder (git could not store it)."""
    folders = set()
    for p in files:
        parts = p.split("/")
        for i in range(1, len(parts)):
            folders.add("/".join(parts[:i]))
    clash = folders.intersection(files)
    if clash:
        raise BadRequest(f"{sorted(clash)[0]!r} would be both a file and a folder")


def _space_readme(name: str, sdk: str) -> str:
    return f"---\ntitle: {name}\nemoji: 🚀\ncolorFrom: blue\ncolorTo: green\nsdk: {sdk}\npinned: false\n---\n"


def read_stream_to_blob(store: Storage, stream: BinaryIO, chunk_size: int = 1 << 20) -> tuple[str, int]:
    """Copy a file-like object into the blob store; returns (sha256, size)."""
    writer = store.blob_writer()
    try:
        while chunk := stream.read(chunk_size):
            writer.write(chunk)
        return writer.finish(), writer.size
    except BaseException:
        writer.abort()
        raise
