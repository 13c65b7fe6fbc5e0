"""Python API for administering a local Hub's data folder (used by `rag-de hub token create/list/revoke`).

Works on the data folder directly (SQLite allows a second writer next to a running server), so users
and tokens can be added while the server runs.
"""

from __future__ import annotations

from typing import Iterable

from local_hub.storage import Storage, TokenInfo


def create_token(data_dir, user: str, role: str, orgs: Iterable[str] = ()) -> str:
    """Create `user` (and membership in each org) if missing, then a new `role` token; returns it.

    The token is shown once: only its sha256 is stored.
    """
    store = Storage(data_dir)
    store.ensure_user(user)
    for org in orgs:
        store.add_member(org, user)
    return store.create_token(user, role, name=f"cli-{role}")


def list_tokens(data_dir, user: str | None = None) -> list[TokenInfo]:
    """Every token (of `user`): id, user, role, name, creation time; never the token itself."""
    return Storage(data_dir).list_tokens(user)


def revoke_token(data_dir, token_id: str) -> TokenInfo:
    """Delete the token with this id (as `list_tokens` shows it); requests with it fail from now on."""
    return Storage(data_dir).revoke_token(token_id)
