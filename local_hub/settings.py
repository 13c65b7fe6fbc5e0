"""Limits and page sizes of the local Hub, as one typed config (flags of `rag-de hub serve`).

The defaults follow what the real Hub does, so that a client that works here also works there.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class LocalHubConfig:
    lfs_threshold_bytes: int = field(default=10 * 1024 * 1024, metadata={
        "help": "files larger than this must be uploaded through LFS (the Hub's limit is 10 MiB)"})
    tree_page_size: int = field(default=1000, metadata={
        "help": "entries per page of the tree listing (the Hub pages at 1000, 50 with expand)"})
    tree_expand_page_size: int = field(default=50, metadata={
        "help": "entries per page of the tree listing when expand=true"})
    commits_page_size: int = field(default=50, metadata={"help": "commits per page of the commit history"})
    max_header_line_bytes: int = field(default=64 * 1024, metadata={
        "help": "largest accepted NDJSON header line of a commit (summary + description)"})
    max_commit_line_bytes: int = field(default=32 * 1024 * 1024, metadata={
        "help": "largest accepted NDJSON line of a commit (one base64 regular file)"})
    lfs_upload_url_ttl_s: int = field(default=24 * 3600, metadata={
        "help": "lifetime of the signed LFS upload URLs handed out by the batch API"})
    max_json_body_bytes: int = field(default=8 * 1024 * 1024, metadata={
        "help": "largest accepted JSON request body outside commits and uploads"})
