"""Per-example cache of generations and losses, so an interrupted or repeated evaluation resumes.

One JSONL file; each record carries a key = hash(variant settings, example id, prompt). A batch is
appended with a single write + fsync, and a torn last line (crash mid-write) is dropped on the next
load, so a record is either fully there or absent.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from rag_de.atomic import write_text


def settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def example_key(settings_digest: str, kind: str, example_id: str, prompt: str) -> str:
    text = json.dumps([settings_digest, kind, example_id, hashlib.sha256(prompt.encode()).hexdigest()])
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: dict[str, dict] = {}
        self.hits = 0
        self.added = 0
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        raw = self.path.read_text(encoding="utf-8")
        lines = raw.split("\n")
        good: list[str] = []
        torn = False
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                torn = True  # only a crash mid-append produces this; drop the partial record
                continue
            self.records[record["key"]] = record
            good.append(line)
        if torn or (raw and not raw.endswith("\n")):
            write_text(self.path, "".join(l + "\n" for l in good))

    def get(self, key: str) -> dict | None:
        record = self.records.get(key)
        if record is not None:
            self.hits += 1
        return record

    def __contains__(self, key: str) -> bool:
        return key in self.records

    def append(self, records: list[dict]) -> None:
        if not records:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        blob = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(blob)
            fh.flush()
            os.fsync(fh.fileno())
        for r in records:
            self.records[r["key"]] = r
        self.added += len(records)
