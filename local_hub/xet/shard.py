"""Shard parsing (hub-docs docs/xet/shard.md): file reconstructions, xorb listings, sha256 metadata.

An upload shard is a 48-byte header, the file info section and the CAS info section, each closed by
a bookend (32 bytes of 0xFF + 16 zero bytes); the footer is omitted on upload (if one is sent, the
header's footer_size says how long it is, and it is ignored). All integers are little-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER_TAG = bytes([72, 70, 82, 101, 112, 111, 77, 101, 116, 97, 68, 97, 116, 97, 0, 85, 105, 103, 69, 106, 123,
                    129, 87, 131, 165, 189, 217, 92, 205, 209, 74, 169])   # b"HFRepoMetaData\0" + magic
HEADER_VERSION = 2
ENTRY = 48
BOOKEND_HASH = b"\xff" * 32
FLAG_VERIFICATION = 1 << 31
FLAG_METADATA_EXT = 1 << 30
MAX_SHARD_BYTES = 64 * 1024 * 1024


class ShardError(ValueError):
    """The bytes are not a valid upload shard; nothing is stored."""


@dataclass(frozen=True)
class Term:
    xorb: bytes
    unpacked_bytes: int
    chunk_start: int
    chunk_end: int         # exclusive


@dataclass(frozen=True)
class FileInfo:
    file_hash: bytes
    terms: tuple[Term, ...]
    verification: tuple[bytes, ...] | None
    sha256: bytes | None

    @property
    def size(self) -> int:
        return sum(t.unpacked_bytes for t in self.terms)


@dataclass(frozen=True)
class XorbListing:
    xorb: bytes
    chunk_hashes: tuple[bytes, ...]
    raw_bytes: int
    bytes_on_disk: int


@dataclass(frozen=True)
class Shard:
    files: tuple[FileInfo, ...]
    xorbs: tuple[XorbListing, ...]


class _Reader:
    def __init__(self, data: bytes, end: int):
        self.data, self.pos, self.end = data, 0, end

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > self.end:
            raise ShardError(f"shard is truncated inside {what} (byte {self.pos})")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out


def parse_shard(data: bytes) -> Shard:
    if len(data) > MAX_SHARD_BYTES:
        raise ShardError(f"shard is {len(data)} bytes, over the {MAX_SHARD_BYTES} byte limit")
    if len(data) < ENTRY or data[:32] != HEADER_TAG:
        raise ShardError("not a shard: the header tag is missing")
    version, footer_size = struct.unpack_from("<QQ", data, 32)
    if version != HEADER_VERSION:
        raise ShardError(f"shard header version {version}, expected {HEADER_VERSION}")
    if footer_size > len(data) - ENTRY:
        raise ShardError(f"shard footer size {footer_size} is larger than the shard")
    r = _Reader(data, len(data) - footer_size)
    r.pos = ENTRY
    files = []
    while True:
        head = r.take(ENTRY, "a file info header")
        file_hash, flags, n = head[:32], *struct.unpack_from("<II", head, 32)
        if file_hash == BOOKEND_HASH:
            break
        terms = []
        for _ in range(n):
            e = r.take(ENTRY, "a file data sequence entry")
            _cas_flags, unpacked, start, end = struct.unpack_from("<IIII", e, 32)
            if end <= start:
                raise ShardError(f"file term has an empty or reversed chunk range [{start}, {end})")
            terms.append(Term(e[:32], unpacked, start, end))
        verification = None
        if flags & FLAG_VERIFICATION:
            verification = tuple(r.take(ENTRY, "a verification entry")[:32] for _ in range(n))
        sha256 = r.take(ENTRY, "a metadata extension")[:32] if flags & FLAG_METADATA_EXT else None
        files.append(FileInfo(file_hash, tuple(terms), verification, sha256))
    xorbs = []
    while True:
        head = r.take(ENTRY, "a CAS info header")
        xorb, (_flags, n, raw_bytes, on_disk) = head[:32], struct.unpack_from("<IIII", head, 32)
        if xorb == BOOKEND_HASH:
            break
        hashes = tuple(r.take(ENTRY, "a CAS chunk entry")[:32] for _ in range(n))
        xorbs.append(XorbListing(xorb, hashes, raw_bytes, on_disk))
    if files and files[0].verification is not None and any(f.verification is None for f in files):
        raise ShardError("some files of the shard have verification entries and some do not")
    return Shard(tuple(files), tuple(xorbs))
