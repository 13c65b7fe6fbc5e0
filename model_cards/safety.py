"""The last check before a card is written or pushed: no access token and no local path in it.

Cards are public. A token pasted into a config, or a path such as `/home/alice/runs/x` taken from a run
folder, must never reach them; rendering fails loudly instead.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from rag_de.errors import UserError

# Hugging Face user/org access tokens, and generic bearer-style secrets assigned in text.
TOKEN_PATTERNS = (
    re.compile(r"\bhf_[A-Za-z0-9]{20,}\b"),
    re.compile(r"\bapi_org_[A-Za-z0-9]{20,}\b"),
    re.compile(r"(?i)\b(?:token|secret|password|api[_-]?key)\s*[:=]\s*['\"]?[A-Za-z0-9_\-]{16,}"),
)
# Absolute paths that only exist on someone's machine.
GENERIC_LOCAL_PATH = re.compile(r"(?:(?<![\w.:/])/(?:home|Users|root|tmp|var/folders|private/var)/)"
                                r"|(?:\b[A-Za-z]:\\Users\\)")


class UnsafeCardError(UserError):
    """A rendered card would publish a secret or a local path."""


def _local_roots() -> list[str]:
    roots = {str(Path.home()), tempfile.gettempdir(), os.getcwd()}
    return sorted((r.rstrip("/") for r in roots if r and r not in ("/", "")), key=len, reverse=True)


def check_publishable(text: str, what: str = "card") -> str:
    """Return `text` unchanged, or raise `UnsafeCardError` naming what leaked and where."""
    secrets = [os.environ.get(name) for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")]
    try:
        from huggingface_hub import get_token

        secrets.append(get_token())
    except Exception:  # noqa: BLE001 - no huggingface_hub or no login: nothing to compare against
        pass
    for secret in filter(None, secrets):
        if len(secret) >= 8 and secret in text:
            raise UnsafeCardError(f"{what} contains the current Hugging Face access token; refusing to write it")
    for pattern in TOKEN_PATTERNS:
        match = pattern.search(text)
        if match:
            raise UnsafeCardError(f"{what} contains something token-like near {_line_of(text, match.start())!r}; "
                                  "remove secrets from the config/data the card is rendered from")
    for root in _local_roots():
        if len(root) > 1 and root + "/" in text:
            raise UnsafeCardError(f"{what} contains the local path {root}/... (line "
                                  f"{_line_of(text, text.index(root + '/'))!r}); cards must name Hub ids, not paths")
    match = GENERIC_LOCAL_PATH.search(text)
    if match:
        raise UnsafeCardError(f"{what} contains a local path (line {_line_of(text, match.start())!r}); "
                              "cards must name Hub ids, not paths")
    return text


def _line_of(text: str, pos: int) -> str:
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    return text[start: end if end >= 0 else len(text)].strip()[:120]
