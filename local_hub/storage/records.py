"""What the store holds and how it says no: constants, the immutable records, the errors, input checks.

Why one module: every other storage module and the HTTP side share these names, and none of them
touches the disk or the database.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

REPO_TYPES = ("model", "dataset", "space")
DEFAULT_BRANCH = "main"
DEFAULT_USER = "admin"
DEFAULT_ORG = "org"
LFS_POINTER_VERSION = "https://git-lfs.github.com/spec/v1"

NAME_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
REF_RE = re.compile(r"^(?!/)(?!.*//)(?!.*\.\.)(?!.*/$)[A-Za-z0-9._/-]{1,200}$")
MAX_PATH_LEN = 1000


class StorageError(Exception):
    """Base of the errors the HTTP side turns into Hub-shaped answers (`context.map_storage_error`)."""


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
    gated: str | None = None   # None, "auto" or "manual", as the Hub's `gated` setting

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
    id: str = ""     # first hex digits of the token's sha256: names it for `token list/revoke`, unusable as a token


@dataclass(frozen=True)
class Discussion:
    """A discussion or pull request; a PR's changes live on the ref `refs/pr/<num>`."""

    repo: int
    num: int
    is_pr: bool
    title: str
    status: str                # "open" | "closed" | "merged" (PRs) | "draft" (PRs)
    author: str
    created_at: float
    base_branch: str | None    # PRs: the branch it merges into
    base_commit: str | None    # PRs: the commit of base_branch it started from (merge base)
    merge_commit: str | None   # PRs: the commit on base_branch that merged it

    @property
    def ref(self) -> str:
        return f"refs/pr/{self.num}"


@dataclass(frozen=True)
class DiscussionEvent:
    id: str
    type: str                  # "comment" | "status-change" | "commit" | "title-change"
    author: str
    created_at: float
    data: dict


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


PR_REF_RE = re.compile(r"^refs/pr/([1-9][0-9]{0,8})$")


def ref_key(revision: str) -> tuple[str, str]:
    """A revision as (kind, name) in the refs table: `refs/pr/3` -> ("pr", "3"), `refs/heads/x` -> ("branch",
    "x"), `refs/tags/x` -> ("tag", "x"), anything else -> ("branch", revision)."""
    m = PR_REF_RE.match(revision)
    if m:
        return "pr", m.group(1)
    for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
        if revision.startswith(prefix):
            return kind, revision[len(prefix):]
    return "branch", revision


def validate_ref_name(name: str) -> str:
    if not REF_RE.match(name or "") or COMMIT_RE.match(name) or name.startswith("refs/"):
        raise BadRequest(f"invalid branch or tag name {name!r}")
    return name
