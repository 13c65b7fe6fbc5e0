"""Durable storage for the local Hub: content-addressed blobs on disk plus one SQLite database.

Why this shape: file contents are immutable and deduplicated by sha256, so they can be written
(temp file, fsync, rename) long before a commit and never change afterwards; everything that must
change atomically (refs, commits, file listings, users, tokens) lives in SQLite (WAL, synchronous=FULL),
so a commit is one transaction that either happened completely or not at all. A server killed at any
moment restarts with every repo at its last completed commit. No HTTP here.

Modules, one job each: `records` (names, records, errors, checks), `db` (SQLite), `blobs`, `users`
(users and tokens), `repos` (names, redirects, settings), `lfs` (LFS objects), `commits` (refs and
commits), `discussions` (discussions and pull requests), `spaces` (Space settings); `Storage` is all
of them over one data folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from local_hub.storage.blobs import BlobStore, BlobWriter
from local_hub.storage.commits import CommitStore
from local_hub.storage.db import Database
from local_hub.storage.discussions import DiscussionStore
from local_hub.storage.lfs import LfsStore
from local_hub.storage.records import (
    COMMIT_RE, DEFAULT_BRANCH, DEFAULT_ORG, DEFAULT_USER, REPO_TYPES, SHA256_RE, BadRequest, Commit, Conflict,
    Discussion, DiscussionEvent, Entry, EntryNotFound, NotFound, Operation, ParentMismatch, Repo, RevisionNotFound,
    StorageError, TokenInfo, git_blob_oid, lfs_pointer, now_iso, ref_key, validate_name, validate_path,
    validate_ref_name,
)
from local_hub.storage.repos import DEFAULT_GITATTRIBUTES, RepoStore
from local_hub.storage.spaces import SpaceStore
from local_hub.storage.users import UserStore

__all__ = [
    "COMMIT_RE", "DEFAULT_BRANCH", "DEFAULT_GITATTRIBUTES", "DEFAULT_ORG", "DEFAULT_USER", "REPO_TYPES", "SHA256_RE",
    "BadRequest", "BlobWriter", "Commit", "Conflict", "Discussion", "DiscussionEvent", "Entry", "EntryNotFound",
    "NotFound", "Operation", "ParentMismatch", "Repo", "RevisionNotFound", "Storage", "StorageError", "TokenInfo",
    "git_blob_oid", "lfs_pointer", "now_iso", "ref_key", "validate_name", "validate_path", "validate_ref_name",
]


class Storage(BlobStore, UserStore, RepoStore, LfsStore, CommitStore, DiscussionStore, SpaceStore, Database):
    """All persistent state of one server. Thread-safe: one SQLite connection per thread."""

    def __init__(self, data_dir: str | os.PathLike):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.data_dir, 0o700)
        self.init_blobs(self.data_dir / "blobs", self.data_dir / "tmp")
        self.init_commits()
        self.init_db(self.data_dir / "hub.sqlite3")
