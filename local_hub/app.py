"""The local Hub's ASGI app: the route table (the subset of the Hub API that huggingface_hub and datasets use).

The shapes of requests and answers follow the client code of huggingface_hub 2.x (hf_api.py,
_commit_api.py, lfs.py, file_download.py). Handlers live by job: `repo_routes` (repos, refs,
commits), `tree_routes` (tree, paths-info, resolve), `space_routes`, `uploads` (preupload, commit,
LFS); JSON shapes in `shapes`, per-request plumbing in `context`.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from local_hub.context import endpoint
from local_hub import discussion_routes as discussions
from local_hub.listing_routes import agent_harnesses, list_repos, storage_listing
from local_hub.maintenance_routes import delete_lfs_files, duplicate, list_lfs_files, super_squash
from local_hub.repo_routes import (
    auth_check, create_branch, create_repo, create_tag, delete_branch, delete_repo, delete_tag, health, list_commits,
    list_refs, move_repo, repo_info, update_settings, validate_yaml, whoami,
)
from local_hub.settings import LocalHubConfig
from local_hub.space_routes import space_runtime, space_secrets, space_variables
from local_hub.storage import Storage
from local_hub.tree_routes import list_tree, paths_info, resolve_file
from local_hub.uploads import commit, lfs_batch, lfs_upload, lfs_verify, preupload
from local_hub.xet.routes import xet_routes


# ---------------------------------------------------------------------------------------------- app
REPO = "/api/{rtype}s/{ns}/{name}"
PREFIXED = "/{prefix:prefix}{ns}/{name}"


def _routes() -> list[Route]:
    j = lambda fn: endpoint(fn, json_body=True)  # noqa: E731
    routes = [
        Route("/api/health", endpoint(health), methods=["GET", "HEAD"]),
        Route("/api/whoami-v2", endpoint(whoami), methods=["GET"]),
        Route("/api/repos/create", j(create_repo), methods=["POST"]),
        Route("/api/repos/delete", j(delete_repo), methods=["DELETE", "POST"]),
        Route("/api/repos/move", j(move_repo), methods=["POST"]),
        Route("/api/validate-yaml", j(validate_yaml), methods=["POST"]),
        Route("/api/agent-harnesses", endpoint(agent_harnesses), methods=["GET"]),
        Route("/api/settings/repositories", endpoint(storage_listing), methods=["GET"]),
        Route("/api/organizations/{org}/settings/repositories", endpoint(storage_listing), methods=["GET"]),
        Route("/api/lfs-upload/{repo_pk}/{oid}", lfs_upload, methods=["PUT", "POST"]),
        Route("/api/spaces/{ns}/{name}/variables", j(space_variables), methods=["GET", "POST", "DELETE"]),
        Route("/api/spaces/{ns}/{name}/secrets", j(space_secrets), methods=["GET", "POST", "DELETE"]),
        Route("/api/spaces/{ns}/{name}/runtime", j(space_runtime), methods=["GET"]),
        Route("/api/spaces/{ns}/{name}/restart", j(space_runtime), methods=["POST"]),
        Route("/api/{rtype}s", endpoint(list_repos), methods=["GET"]),
        Route(REPO, endpoint(repo_info), methods=["GET"]),
        Route(REPO + "/revision/{rev}", endpoint(repo_info), methods=["GET"]),
        Route(REPO + "/settings", j(update_settings), methods=["PUT"]),
        Route(REPO + "/auth-check", endpoint(auth_check), methods=["GET"]),
        Route(REPO + "/auth-check/write", endpoint(auth_check), methods=["GET"]),
        Route(REPO + "/tree/{rev}", endpoint(list_tree), methods=["GET"]),
        Route(REPO + "/tree/{rev}/{path:path}", endpoint(list_tree), methods=["GET"]),
        Route(REPO + "/paths-info/{rev}", paths_info, methods=["POST"]),
        Route(REPO + "/preupload/{rev}", j(preupload), methods=["POST"]),
        Route(REPO + "/commit/{rev}", commit, methods=["POST"]),
        Route(REPO + "/commits/{rev}", endpoint(list_commits), methods=["GET"]),
        Route(REPO + "/refs", endpoint(list_refs), methods=["GET"]),
        Route(REPO + "/super-squash/{rev}", j(super_squash), methods=["POST"]),
        Route(REPO + "/duplicate", j(duplicate), methods=["POST"]),
        Route(REPO + "/lfs-files", endpoint(list_lfs_files), methods=["GET"]),
        Route(REPO + "/lfs-files/batch", j(delete_lfs_files), methods=["POST"]),
        Route(REPO + "/discussions", endpoint(discussions.list_discussions), methods=["GET"]),
        Route(REPO + "/discussions", j(discussions.create_discussion), methods=["POST"]),
        Route(REPO + "/discussions/{num}", endpoint(discussions.discussion_details), methods=["GET"]),
        Route(REPO + "/discussions/{num}/comment", j(discussions.comment), methods=["POST"]),
        Route(REPO + "/discussions/{num}/title", j(discussions.rename), methods=["POST"]),
        Route(REPO + "/discussions/{num}/status", j(discussions.change_status), methods=["POST"]),
        Route(REPO + "/discussions/{num}/merge", j(discussions.merge), methods=["POST"]),
        *xet_routes(REPO),
        Route(REPO + "/branch/{branch}", j(create_branch), methods=["POST"]),
        Route(REPO + "/branch/{branch}", endpoint(delete_branch), methods=["DELETE"]),
        Route(REPO + "/tag/{rev}", j(create_tag), methods=["POST"]),
        Route(REPO + "/tag/{rev}", endpoint(delete_tag), methods=["DELETE"]),
        Route(PREFIXED + ".git/info/lfs/objects/batch", j(lfs_batch), methods=["POST"]),
        Route(PREFIXED + ".git/info/lfs/objects/verify", j(lfs_verify), methods=["POST"]),
        Route(PREFIXED + "/resolve/{rev}/{path:path}", endpoint(resolve_file), methods=["GET", "HEAD"]),
    ]
    return routes


class _RawPath:
    """Route on the raw path so that `%2F` inside a revision stays inside one segment."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope.get("raw_path"):
            scope = dict(scope, path=scope["raw_path"].decode("latin-1"))
        await self.app(scope, receive, send)


def create_app(data_dir, config: LocalHubConfig | None = None):
    """The ASGI app serving DATA_DIR; creates the default user and token on first start."""
    from starlette.convertors import CONVERTOR_TYPES, Convertor

    if "prefix" not in CONVERTOR_TYPES:
        class PrefixConvertor(Convertor):
            regex = "(?:datasets/|spaces/)?"

            def convert(self, value: str) -> str:
                return value.rstrip("/")

            def to_string(self, value: str) -> str:
                return value + "/" if value else ""

        CONVERTOR_TYPES["prefix"] = PrefixConvertor()

    store = Storage(data_dir)
    store.clean_tmp()
    store.bootstrap()
    app = Starlette(routes=_routes())
    app.state.store = store
    app.state.config = config or LocalHubConfig()
    return _RawPath(app)
