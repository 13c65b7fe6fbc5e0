"""Content-addressed blobs: file contents on disk under their sha256, immutable once installed.

Why: contents are deduplicated and can be made durable (temp file, fsync, rename) long before the
commit that references them; a crash leaves at most unreferenced files in `tmp/`, swept at start.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from local_hub.storage.records import SHA256_RE
from rag_de.atomic import fsync_dir


class BlobWriter:
    """Streams one blob to a temp file while hashing it; `finish` makes it durable under its sha256."""

    def __init__(self, store: "BlobStore"):
        self._store = store
        fd, self._tmp = tempfile.mkstemp(dir=store.tmp_dir, prefix="blob-")
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self._hash.update(chunk)
        self.size += len(chunk)

    def sha256(self) -> str:
        """The hex sha256 of what was written so far (checked against a claimed oid before `finish`)."""
        return self._hash.hexdigest()

    def finish(self) -> str:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        sha = self.sha256()
        self._store.install_blob(self._tmp, sha)
        return sha

    def abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        if os.path.exists(self._tmp):
            os.unlink(self._tmp)


class BlobStore:
    """The blob half of `Storage`: `blob_dir/<2 hex>/<62 hex>`, temp files in `tmp_dir`."""

    blob_dir: Path
    tmp_dir: Path

    def init_blobs(self, blob_dir: Path, tmp_dir: Path) -> None:
        self.blob_dir, self.tmp_dir = blob_dir, tmp_dir
        blob_dir.mkdir(exist_ok=True)
        tmp_dir.mkdir(exist_ok=True)

    def clean_tmp(self) -> int:
        """Remove half-written uploads left by a crash (they were never referenced by any commit)."""
        n = 0
        for p in self.tmp_dir.iterdir():
            p.unlink(missing_ok=True)
            n += 1
        return n

    def blob_path(self, sha256: str) -> Path:
        return self.blob_dir / sha256[:2] / sha256[2:]

    def has_blob(self, sha256: str) -> bool:
        return bool(SHA256_RE.match(sha256 or "")) and self.blob_path(sha256).is_file()

    def install_blob(self, tmp: str | os.PathLike, sha256: str) -> None:
        """Move a complete, fsynced temp file (in `tmp_dir`) to its content address; the caller vouches
        that `sha256` is its hash. An existing blob wins and the temp file is dropped."""
        target = self.blob_path(sha256)
        if target.exists():
            os.unlink(tmp)
            return
        target.parent.mkdir(exist_ok=True)
        os.chmod(tmp, 0o444)
        os.replace(tmp, target)
        fsync_dir(target.parent)

    def blob_writer(self) -> BlobWriter:
        return BlobWriter(self)

    def put_bytes(self, data: bytes) -> str:
        writer = self.blob_writer()
        try:
            writer.write(data)
            return writer.finish()
        except BaseException:
            writer.abort()
            raise

    def read_blob(self, sha256: str) -> bytes:
        return self.blob_path(sha256).read_bytes()
