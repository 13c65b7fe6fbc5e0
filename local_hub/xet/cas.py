"""The CAS store: verified xorbs on disk, shards applied to the blob store, short-lived CAS tokens.

Layout under DATA_DIR/xet/: `cas_id` (random, per data dir: it is part of the casUrl, because hf_xet
caches shards locally keyed by that URL and must never deduplicate against a wiped server), `xorbs/`
(chunk sections, named by xorb hash), `files/` (one reconstruction per Xet file id, for HEAD and the
read path), `shards/` (accepted shards, by sha256). Temp files go to the store's `tmp/`, swept at every
server start. Every file appears by atomic rename after fsync, and only after its hashes were checked:
a corrupt or half-received upload leaves nothing.
A shard's files become ordinary sha256 blobs + LFS registrations of the token's repo, so the NDJSON
commit that names them by sha256 goes through the unchanged LFS check.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from local_hub.storage import Repo, Storage
from local_hub.xet.hashing import ZERO_HASH, file_hash, hash_to_hex, verification_hash
from local_hub.xet.shard import FileInfo, Shard, ShardError, parse_shard
from local_hub.xet.xorb import HEADER_SIZE, XorbError, XorbIndex, decompress, index_xorb, verify_xorb
from rag_de.atomic import fsync_dir, write_bytes

TOKEN_PREFIX = "xet_"


class CasTokenError(Exception):
    """Missing, forged, expired or too weak CAS token; `status` is 401 or 403."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CasGrant:
    scope: str          # "read" | "write"
    repo_type: str
    repo_id: str
    repo_pk: int
    expires: int


class XetStore:
    """Xet state of one data dir; thread-safe (files are immutable once renamed into place)."""

    def __init__(self, store: Storage, token_ttl_s: int = 3600, index_cache: int = 128):
        self.store = store
        self.root = store.data_dir / "xet"
        self.xorb_dir, self.file_dir = self.root / "xorbs", self.root / "files"
        self.shard_dir = self.root / "shards"
        self.tmp_dir = store.tmp_dir  # half-written xorbs of a killed server are swept with the blobs' temp files
        for d in (self.xorb_dir, self.file_dir, self.shard_dir):
            d.mkdir(parents=True, exist_ok=True)
        id_file = self.root / "cas_id"
        if not id_file.exists():
            write_bytes(id_file, secrets.token_hex(8).encode())
        self.cas_id = id_file.read_text().strip()
        self.token_ttl_s = token_ttl_s
        self._cache: OrderedDict[str, XorbIndex] = OrderedDict()
        self._cache_size = index_cache
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ tokens
    def issue_token(self, repo: Repo, scope: str) -> tuple[str, int]:
        exp = int(time.time()) + self.token_ttl_s
        claims = json.dumps({"s": scope, "t": repo.type, "r": repo.repo_id, "p": repo.id, "e": exp,
                             "c": self.cas_id}, separators=(",", ":")).encode()
        body = base64.urlsafe_b64encode(claims).decode().rstrip("=")
        return f"{TOKEN_PREFIX}{body}.{self._sign(body)}", exp

    def _sign(self, body: str) -> str:
        return hmac.new(self.store.server_secret(), b"xet-cas:" + body.encode(), hashlib.sha256).hexdigest()

    def check_token(self, authorization: str | None, need: str) -> CasGrant:
        scheme, _, token = (authorization or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token.startswith(TOKEN_PREFIX) or "." not in token:
            raise CasTokenError(401, "missing CAS token: get one from /api/{type}s/{id}/xet-write-token/{rev}")
        body, _, sig = token[len(TOKEN_PREFIX):].rpartition(".")
        if not hmac.compare_digest(sig, self._sign(body)):
            raise CasTokenError(401, "invalid CAS token (not issued by this server)")
        try:
            c = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            grant = CasGrant(c["s"], c["t"], c["r"], int(c["p"]), int(c["e"]))
        except (ValueError, KeyError, TypeError):
            raise CasTokenError(401, "malformed CAS token") from None
        if grant.expires < time.time():
            raise CasTokenError(401, "CAS token expired: refresh it from the token route")
        if need == "write" and grant.scope != "write":
            raise CasTokenError(403, "this CAS token is read-only: uploads need a write token")
        return grant

    def repo_of(self, grant: CasGrant) -> Repo | None:
        return self.store.get_repo_by_pk(grant.repo_pk)

    # ------------------------------------------------------------------ xorbs
    def xorb_path(self, hex_hash: str) -> Path:
        return self.xorb_dir / hex_hash[:2] / hex_hash

    def has_xorb(self, hex_hash: str) -> bool:
        return self.xorb_path(hex_hash).is_file()

    def put_xorb(self, hex_hash: str, data: bytes) -> bool:
        """Verify every chunk and the xorb hash, then store the chunk section; False if it was there."""
        index = verify_xorb(data, hex_hash)
        target = self.xorb_path(hex_hash)
        if target.is_file():
            return False
        target.parent.mkdir(exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.tmp_dir, prefix="xorb-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(memoryview(data)[:index.section_size])
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o444)
            os.replace(tmp, target)
            fsync_dir(target.parent)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        self._remember(hex_hash, index)
        return True

    def _remember(self, hex_hash: str, index: XorbIndex) -> None:
        with self._lock:
            self._cache[hex_hash] = index
            self._cache.move_to_end(hex_hash)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def xorb_index(self, hex_hash: str) -> XorbIndex | None:
        with self._lock:
            if hex_hash in self._cache:
                self._cache.move_to_end(hex_hash)
                return self._cache[hex_hash]
        path = self.xorb_path(hex_hash)
        if not path.is_file():
            return None
        index = index_xorb(path.read_bytes())  # after a restart: re-derived from the stored bytes
        self._remember(hex_hash, index)
        return index

    def iter_chunks(self, hex_hash: str, start: int, end: int) -> Iterator[bytes]:
        """Raw bytes of chunks [start, end) of a stored xorb."""
        index = self.xorb_index(hex_hash)
        chunks = index.chunks[start:end]
        with open(self.xorb_path(hex_hash), "rb") as f:
            f.seek(chunks[0].offset)
            section = f.read(chunks[-1].end - chunks[0].offset)
        base = chunks[0].offset
        for c in chunks:
            lo = c.offset - base + HEADER_SIZE
            yield decompress(c.scheme, section[lo:lo + c.compressed_size], c.size)

    # ------------------------------------------------------------------ shards
    def _check_file(self, f: FileInfo) -> list[tuple[bytes, int]]:
        """Check one file's terms against the stored xorbs; returns its (chunk hash, size) leaves."""
        name = hash_to_hex(f.file_hash)
        if f.verification is None:
            raise ShardError(f"file {name} has no verification entries (required on upload)")
        if f.sha256 is None:
            raise ShardError(f"file {name} has no sha256 metadata extension (required for git repos)")
        leaves: list[tuple[bytes, int]] = []
        for i, t in enumerate(f.terms):
            xhex = hash_to_hex(t.xorb)
            index = self.xorb_index(xhex)
            if index is None:
                raise ShardError(f"file {name} term {i} names xorb {xhex}, which was never uploaded")
            if t.chunk_end > len(index.chunks):
                raise ShardError(f"file {name} term {i}: chunks [{t.chunk_start}, {t.chunk_end}) are outside "
                                 f"xorb {xhex} ({len(index.chunks)} chunks)")
            chunks = index.chunks[t.chunk_start:t.chunk_end]
            if sum(c.size for c in chunks) != t.unpacked_bytes:
                raise ShardError(f"file {name} term {i}: size {t.unpacked_bytes} does not match xorb {xhex}")
            if verification_hash([c.hash for c in chunks]) != f.verification[i]:
                raise ShardError(f"file {name} term {i}: verification hash does not match xorb {xhex}")
            leaves.extend((c.hash, c.size) for c in chunks)
        if (file_hash(leaves) if leaves else ZERO_HASH) != f.file_hash:
            raise ShardError(f"file {name}: its chunks hash to {hash_to_hex(file_hash(leaves))}")
        return leaves

    def apply_shard(self, data: bytes, repo: Repo) -> int:
        """Verify a whole shard, then materialize its files as blobs registered to `repo`.

        Returns 1 (registered) or 0 (this exact shard was applied before), as /v1/shards answers.
        All checks and all file contents are done before any blob is installed; a failure anywhere
        raises ShardError / XorbError and leaves the blob store and the repo as they were.
        """
        shard: Shard = parse_shard(data)
        for x in shard.xorbs:
            xhex = hash_to_hex(x.xorb)
            index = self.xorb_index(xhex)
            if index is None:
                raise ShardError(f"shard lists xorb {xhex}, which was never uploaded")
            if tuple(c.hash for c in index.chunks) != x.chunk_hashes:
                raise ShardError(f"shard's chunk listing of xorb {xhex} does not match the stored xorb")
        for f in shard.files:
            self._check_file(f)
        writers = []
        try:
            for f in shard.files:
                w = self.store.blob_writer()
                writers.append((f, w))
                for t in f.terms:
                    for raw in self.iter_chunks(hash_to_hex(t.xorb), t.chunk_start, t.chunk_end):
                        w.write(raw)
                # The metadata extension holds the sha256 as a Xet hash (its string form is the hex digest).
                if w.sha256() != hash_to_hex(f.sha256):
                    raise ShardError(f"file {hash_to_hex(f.file_hash)}: content sha256 is {w.sha256()}, "
                                     f"the shard says {hash_to_hex(f.sha256)}")
            installed = [(f, w.finish(), w.size) for f, w in writers]
        except BaseException:
            for _, w in writers:
                w.abort()
            raise
        for f, sha, size in installed:
            self.store.lfs_register(repo, sha, size)
            recon = {"sha256": sha, "size": size,
                     "terms": [[hash_to_hex(t.xorb), t.chunk_start, t.chunk_end, t.unpacked_bytes] for t in f.terms]}
            path = self.file_dir / f"{hash_to_hex(f.file_hash)}.json"
            if not path.exists():
                write_bytes(path, json.dumps(recon).encode())
        shard_path = self.shard_dir / f"{hashlib.sha256(data).hexdigest()}.shard"
        if shard_path.exists():
            return 0
        write_bytes(shard_path, data)
        return 1

    def file_reconstruction(self, hex_hash: str) -> dict | None:
        path = self.file_dir / f"{hex_hash}.json"
        return json.loads(path.read_text()) if path.is_file() else None


__all__ = ["XetStore", "CasGrant", "CasTokenError", "ShardError", "XorbError"]
