"""Opt-out: make huggingface_hub upload through LFS instead of Xet when it talks to a local hub.

Why it exists: huggingface_hub 2.x decides *on the client* to upload large files through Xet whenever
`hf_xet` is installed and `HF_HUB_DISABLE_XET` is unset (`utils/_runtime.is_xet_available`). The local
Hub serves the Xet upload protocol (`local_hub/xet`), so nothing needs to be set; this switch stays for
users who want the LFS path explicitly (e.g. to compare the two, as `scripts/bench_hub.py` does).
Against the real Hub it changes nothing.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlparse

HUB_HOSTS = ("huggingface.co", "hf.co")


def is_real_hub(endpoint: str | None) -> bool:
    host = urlparse(endpoint or "https://huggingface.co").hostname or ""
    return any(host == h or host.endswith("." + h) for h in HUB_HOSTS)


def prefer_lfs_uploads(endpoint: str | None = None) -> bool:
    """Disable Xet uploads when `endpoint` (default: $HF_ENDPOINT) is not the real Hub; True if it did."""
    endpoint = endpoint if endpoint is not None else os.environ.get("HF_ENDPOINT")
    if is_real_hub(endpoint):
        return False
    os.environ["HF_HUB_DISABLE_XET"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:  # already imported: the env var was read at import time
        constants.HF_HUB_DISABLE_XET = True
    return True
