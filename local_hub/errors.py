"""Errors answered the way the Hub answers them.

`huggingface_hub.utils.hf_raise_for_status` picks the exception class from the status code and the
`X-Error-Code` header (RepoNotFound, RevisionNotFound, EntryNotFound) and shows `X-Error-Message`;
so each error here carries both, and the clients raise exactly what they raise against the real Hub.
"""

from __future__ import annotations

from starlette.responses import JSONResponse


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        headers = dict(self.headers)
        # Header values must be one latin-1 line; the full text is also in the JSON body.
        headers["X-Error-Message"] = " ".join(self.message.split()).encode("latin-1", "replace").decode("latin-1")
        if self.code:
            headers["X-Error-Code"] = self.code
        return JSONResponse({"error": self.message}, status_code=self.status, headers=headers)


def repo_not_found(authenticated: bool) -> HubError:
    # The Hub answers 401 to anonymous callers and 404 to authenticated ones, both for missing repos
    # and for private repos the caller may not see, so that private names do not leak.
    return HubError(404 if authenticated else 401, "Repository not found", "RepoNotFound")


def revision_not_found(message: str, headers: dict | None = None) -> HubError:
    return HubError(404, message, "RevisionNotFound", headers)


def entry_not_found(message: str, headers: dict | None = None) -> HubError:
    return HubError(404, message, "EntryNotFound", headers)


def bad_request(message: str) -> HubError:
    return HubError(400, message)


def unauthorized(message: str = "Invalid credentials in Authorization header") -> HubError:
    return HubError(401, message)


def forbidden(message: str) -> HubError:
    return HubError(403, message)


def redirect(location: str) -> HubError:
    """307 to the repo's current name (moved repo, other case), which the clients follow like the Hub's."""
    return HubError(307, f"Repository moved: see {location}", None, {"Location": location})


def gated(message: str, authenticated: bool) -> HubError:
    return HubError(403 if authenticated else 401, message, "GatedRepo")
