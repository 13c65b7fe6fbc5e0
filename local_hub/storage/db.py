"""The SQLite side of the store: schema, one connection per thread, write transactions.

Why SQLite (WAL, synchronous=FULL): everything that must change together (refs, commits, file
listings, users, tokens) changes in one transaction, so a server killed at any moment restarts with
every repo at its last completed commit.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

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
CREATE TABLE IF NOT EXISTS repo_redirects (type TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
    repo INTEGER NOT NULL, PRIMARY KEY (type, namespace, name));
CREATE TABLE IF NOT EXISTS discussions (repo INTEGER NOT NULL, num INTEGER NOT NULL, is_pr INTEGER NOT NULL,
    title TEXT NOT NULL, status TEXT NOT NULL, author TEXT NOT NULL, created_at REAL NOT NULL,
    base_branch TEXT, base_commit TEXT, merge_commit TEXT, PRIMARY KEY (repo, num));
CREATE TABLE IF NOT EXISTS discussion_events (repo INTEGER NOT NULL, num INTEGER NOT NULL, seq INTEGER NOT NULL,
    id TEXT NOT NULL, type TEXT NOT NULL, author TEXT NOT NULL, created_at REAL NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (repo, num, seq));
"""

# Columns added after the first release: (table, column, declaration); added to older databases at start.
MIGRATIONS = (
    ("repos", "gated", "TEXT"),
    ("lfs_objects", "pushed_at", "REAL"),
)


class Transaction:
    """`with store.tx() as db:` — BEGIN IMMEDIATE, then COMMIT, or ROLLBACK on any exception."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        # IMMEDIATE takes the write lock up front: concurrent commits queue instead of failing late.
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")


class Database:
    """Per-thread SQLite connections to `db_path`; the base of `Storage`."""

    db_path: Path

    def init_db(self, db_path: Path) -> None:
        self.db_path = db_path
        self._local = threading.local()
        db = self.db()
        db.executescript(SCHEMA)  # executescript manages its own transaction
        for table, column, decl in MIGRATIONS:
            if column not in {r["name"] for r in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {decl}")

    def db(self) -> sqlite3.Connection:
        """This thread's connection (autocommit outside `tx()`)."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.db_path, isolation_level=None, timeout=60, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.row_factory = sqlite3.Row
            self._local.db = db
        return db

    def tx(self) -> Transaction:
        return Transaction(self.db())
