"""On-disk response cache: one JSON file per request, keyed by sha256 of (model, messages, params).

One file per entry, each written atomically, means a build killed at any moment leaves only complete
entries behind, and concurrent workers never contend for a shared file; a rerun finds every answer
that came back before the kill and calls the endpoint only for the rest.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from rag_de.atomic import write_json


def cache_key(model: str, messages: list[dict], params: dict[str, Any]) -> str:
    blob = json.dumps({"model": model, "messages": messages, "params": params},
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            entry = json.loads(self._path(key).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
            return None
        content = entry.get("content") if isinstance(entry, dict) else None
        return content if isinstance(content, str) else None

    def put(self, key: str, content: str, model: str) -> None:
        write_json(self._path(key), {"key": key, "model": model, "content": content})
