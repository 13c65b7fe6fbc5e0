"""Who is calling, and what they may do.

Rules (as on the Hub): anyone reads public repos; private repos need a token of the owner or of a
member of the owning org; writing needs a `write` token and a namespace that is the user's own or one
of its orgs. Tokens are looked up by their sha256, so the database never holds a usable token.
"""

from __future__ import annotations

from dataclasses import dataclass

from local_hub import errors
from local_hub.storage import Repo, Storage


@dataclass(frozen=True)
class Principal:
    user: str
    role: str            # "read" | "write"
    orgs: tuple[str, ...]
    token_name: str
    token_created_at: float

    def member_of(self, namespace: str) -> bool:
        return namespace == self.user or namespace in self.orgs


def authenticate(store: Storage, authorization: str | None) -> Principal | None:
    """None for anonymous calls; HubError 401 for a token that is present but unknown."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.unauthorized()
    info = store.lookup_token(token.strip())
    if info is None:
        raise errors.unauthorized()
    return Principal(info.user, info.role, tuple(store.orgs_of(info.user)), info.name, info.created_at)


def can_read(principal: Principal | None, repo: Repo) -> bool:
    return not repo.private or (principal is not None and principal.member_of(repo.namespace))


def check_read(principal: Principal | None, repo: Repo | None) -> Repo:
    """The repo if the caller may see it; otherwise the Hub's RepoNotFound answer (no existence leak)."""
    if repo is None or not can_read(principal, repo):
        raise errors.repo_not_found(authenticated=principal is not None)
    return repo


def check_write_namespace(principal: Principal | None, namespace: str, what: str) -> Principal:
    if principal is None:
        raise errors.unauthorized("You must be authenticated (Authorization: Bearer <token>) to " + what)
    if principal.role != "write":
        raise errors.forbidden(f"You don't have the rights to {what}: your token is read-only")
    if not principal.member_of(namespace):
        raise errors.forbidden(f"You don't have the rights to {what} under the namespace {namespace!r}")
    return principal


def check_write(principal: Principal | None, repo: Repo | None, what: str) -> tuple[Principal, Repo]:
    repo = check_read(principal, repo)
    return check_write_namespace(principal, repo.namespace, what), repo


def check_contribute(principal: Principal | None, repo: Repo | None, what: str) -> tuple[Principal, Repo]:
    """Open discussions and pull requests, comment, push to one's own PR: as on the Hub, anyone who can
    read the repo may, with a `write` token; merging and writing branches still needs `check_write`."""
    repo = check_read(principal, repo)
    if principal is None:
        raise errors.unauthorized("You must be authenticated (Authorization: Bearer <token>) to " + what)
    if principal.role != "write":
        raise errors.forbidden(f"You don't have the rights to {what}: your token is read-only")
    return principal, repo


def may_write(principal: Principal | None, repo: Repo) -> bool:
    return principal is not None and principal.role == "write" and principal.member_of(repo.namespace)
