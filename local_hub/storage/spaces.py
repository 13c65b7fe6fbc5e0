"""Space variables and secrets (the Hub's Space settings); values are strings keyed like env variables."""

from __future__ import annotations

import re
import time

from local_hub.storage.records import BadRequest, Repo, now_iso

SETTING_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class SpaceStore:
    """The Space-settings part of `Storage` (needs `db()`, `tx()`)."""

    def space_settings(self, repo: Repo, kind: str) -> dict[str, dict]:
        rows = self.db().execute("SELECT key, value, description, updated_at FROM space_settings "
                                 "WHERE repo=? AND kind=? ORDER BY key", (repo.id, kind)).fetchall()
        return {r["key"]: {"value": r["value"], "description": r["description"], "updatedAt": now_iso(r["updated_at"])}
                for r in rows}

    def set_space_setting(self, repo: Repo, kind: str, key: str, value: str, description: str | None) -> None:
        if not SETTING_KEY_RE.match(key or ""):
            raise BadRequest(f"invalid {kind} key {key!r}: use letters, digits and '_' (an environment variable name)")
        if not isinstance(value, str):
            raise BadRequest(f"{kind} value must be a string")
        with self.tx() as db:
            db.execute("INSERT OR REPLACE INTO space_settings VALUES (?,?,?,?,?,?)",
                       (repo.id, kind, key, value, description, time.time()))

    def delete_space_setting(self, repo: Repo, kind: str, key: str) -> None:
        with self.tx() as db:
            db.execute("DELETE FROM space_settings WHERE repo=? AND kind=? AND key=?", (repo.id, kind, key))
