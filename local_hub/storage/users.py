"""Users, orgs and access tokens, plus the server's own secrets (default token file, URL-signing key).

Why hashed: only a token's sha256 is stored, so the database (or a backup of it) never holds a
usable token; the token itself is shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from pathlib import Path

from local_hub.storage.records import (
    DEFAULT_ORG, DEFAULT_USER, BadRequest, Conflict, NotFound, TokenInfo, validate_name,
)
from rag_de.atomic import write_bytes

TOKEN_ROLES = ("read", "write")


TOKEN_ID_LEN = 12  # hex digits of the sha256 shown as a token's id


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_from_row(row) -> TokenInfo:
    return TokenInfo(row["user"], row["role"], row["name"], row["created_at"], row["hash"][:TOKEN_ID_LEN])


class UserStore:
    """The users-and-tokens part of `Storage` (needs `db()`, `tx()` and `data_dir`)."""

    data_dir: Path

    def ensure_user(self, name: str, is_org: bool = False) -> None:
        validate_name(name, "org name" if is_org else "user name")
        with self.tx() as db:
            row = db.execute("SELECT is_org FROM users WHERE name=?", (name,)).fetchone()
            if row is None:
                db.execute("INSERT INTO users VALUES (?,?,?)", (name, int(is_org), time.time()))
            elif bool(row["is_org"]) != is_org:
                raise Conflict(f"{name!r} exists already as {'an org' if row['is_org'] else 'a user'}")

    def add_member(self, org: str, user: str) -> None:
        self.ensure_user(org, is_org=True)
        with self.tx() as db:
            db.execute("INSERT OR IGNORE INTO members VALUES (?,?)", (org, user))

    def is_org(self, name: str) -> bool:
        row = self.db().execute("SELECT is_org FROM users WHERE name=?", (name,)).fetchone()
        return bool(row and row["is_org"])

    def namespace_exists(self, name: str) -> bool:
        return self.db().execute("SELECT 1 FROM users WHERE name=?", (name,)).fetchone() is not None

    def orgs_of(self, user: str) -> list[str]:
        rows = self.db().execute("SELECT org FROM members WHERE user=? ORDER BY org", (user,)).fetchall()
        return [r["org"] for r in rows]

    def create_token(self, user: str, role: str, name: str = "token") -> str:
        """Make a new token for `user` and return it; only its sha256 is stored."""
        if role not in TOKEN_ROLES:
            raise BadRequest(f"role must be 'read' or 'write', not {role!r}")
        token = "hf_" + secrets.token_urlsafe(30).replace("-", "a").replace("_", "b")
        with self.tx() as db:
            db.execute("INSERT INTO tokens VALUES (?,?,?,?,?)", (token_hash(token), user, role, name, time.time()))
        return token

    def lookup_token(self, token: str) -> TokenInfo | None:
        row = self.db().execute("SELECT * FROM tokens WHERE hash=?", (token_hash(token),)).fetchone()
        return token_from_row(row) if row else None

    def list_tokens(self, user: str | None = None) -> list[TokenInfo]:
        """Every token (of `user`), oldest first; each named by `id`, never by the token itself."""
        query, args = "SELECT * FROM tokens", ()
        if user is not None:
            query, args = query + " WHERE user=?", (user,)
        return [token_from_row(r) for r in self.db().execute(query + " ORDER BY created_at, hash", args).fetchall()]

    def revoke_token(self, token_id: str) -> TokenInfo:
        """Delete the one token whose id (hash prefix, as `list_tokens` shows it) starts with `token_id`."""
        if not isinstance(token_id, str) or len(token_id) < TOKEN_ID_LEN or not all(
                c in "0123456789abcdef" for c in token_id):
            raise BadRequest(f"token id must be the {TOKEN_ID_LEN} hex digits that `token list` shows, "
                             f"not {token_id!r}")
        with self.tx() as db:
            rows = db.execute("SELECT * FROM tokens WHERE hash LIKE ?", (token_id + "%",)).fetchall()
            if len(rows) != 1:
                raise NotFound(f"no token with id {token_id}" if not rows else f"token id {token_id} is ambiguous")
            db.execute("DELETE FROM tokens WHERE hash=?", (rows[0]["hash"],))
        return token_from_row(rows[0])

    def bootstrap(self) -> str | None:
        """First start: user `admin` in org `org`, its write token in DATA_DIR/token (mode 600)."""
        token_file = self.data_dir / "token"
        if self.namespace_exists(DEFAULT_USER) and token_file.exists():
            return None
        self.ensure_user(DEFAULT_USER)
        self.add_member(DEFAULT_ORG, DEFAULT_USER)
        token = self.create_token(DEFAULT_USER, "write", name="default")
        write_bytes(token_file, (token + "\n").encode(), permissions=0o600)
        return token

    def server_secret(self) -> bytes:
        """Key that signs LFS upload URLs (the LFS PUT carries no Authorization header)."""
        path = self.data_dir / "secret"
        if not path.exists():
            write_bytes(path, secrets.token_bytes(32), permissions=0o600)
        return path.read_bytes()
