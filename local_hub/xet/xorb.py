"""Xorb parsing (hub-docs docs/xet/xorb.md): walk the chunk headers, decompress, hash, check the name.

A xorb is a run of chunks, each an 8-byte header (version 0, compressed size u24, scheme u8,
uncompressed size u24) followed by its data, compressed with none / LZ4 frame / byte-grouping-4 + LZ4.
xet-core may append a footer (it starts with the ident `XETBLOB`); the chunk bytes alone define the
xorb, so the footer is dropped and only the chunk section is stored. Serialized byte ranges for
downloads come from the offsets found here, never from the client.
"""

from __future__ import annotations

from dataclasses import dataclass

import lz4.frame

from local_hub.xet.hashing import chunk_hash, hash_to_hex, xorb_hash

HEADER_SIZE = 8
CHUNK_VERSION = 0
MAX_CHUNK_BYTES = 128 * 1024           # xorb.md: a raw chunk is at most 128 KiB
MAX_XORB_BYTES = 64 * 1024 * 1024      # xorb.md: the CAS rejects xorbs over 64 MiB serialized
FOOTER_IDENT = b"XETBLOB"
SCHEME_NONE, SCHEME_LZ4, SCHEME_BG4_LZ4 = 0, 1, 2


class XorbError(ValueError):
    """The bytes are not a valid xorb (or not the one named); nothing is stored."""


@dataclass(frozen=True)
class ChunkInfo:
    offset: int            # of the header, in the stored chunk section
    compressed_size: int
    scheme: int
    size: int              # uncompressed
    hash: bytes

    @property
    def end(self) -> int:
        return self.offset + HEADER_SIZE + self.compressed_size


def _bg4_regroup(grouped: bytes, n: int) -> bytes:
    """Undo byte grouping: group k holds bytes k, k+4, ...; the first n % 4 groups are one byte longer."""
    base, extra = divmod(n, 4)
    sizes = [base + (1 if k < extra else 0) for k in range(4)]
    out = bytearray(n)
    pos = 0
    for k in range(4):
        out[k::4] = grouped[pos:pos + sizes[k]]
        pos += sizes[k]
    return bytes(out)


def decompress(scheme: int, data: bytes, size: int) -> bytes:
    if scheme == SCHEME_NONE:
        raw = data
    elif scheme in (SCHEME_LZ4, SCHEME_BG4_LZ4):
        try:
            raw = lz4.frame.decompress(data)
        except Exception as e:  # lz4 raises RuntimeError (bad frame) or others on garbage
            raise XorbError(f"LZ4 frame does not decompress: {e}") from None
        if scheme == SCHEME_BG4_LZ4 and len(raw) == size:
            raw = _bg4_regroup(raw, size)
    else:
        raise XorbError(f"unknown compression scheme {scheme}")
    if len(raw) != size:
        raise XorbError(f"chunk decompresses to {len(raw)} bytes, its header says {size}")
    return raw


def parse_chunks(data: bytes | memoryview, *, want_data: bool = False):
    """Yield (ChunkInfo, raw bytes or None) for each chunk; stops at the end or at a `XETBLOB` footer."""
    view = memoryview(data)
    pos, n = 0, len(view)
    while pos < n:
        if bytes(view[pos:pos + len(FOOTER_IDENT)]) == FOOTER_IDENT:
            return
        if n - pos < HEADER_SIZE:
            raise XorbError(f"truncated chunk header at byte {pos}")
        h = view[pos:pos + HEADER_SIZE]
        version, csize, scheme, usize = h[0], int.from_bytes(h[1:4], "little"), h[4], int.from_bytes(h[5:8], "little")
        if version != CHUNK_VERSION:
            raise XorbError(f"chunk header at byte {pos} has version {version}, expected {CHUNK_VERSION}")
        if usize == 0 or usize > MAX_CHUNK_BYTES or csize > MAX_CHUNK_BYTES + 1024:
            raise XorbError(f"chunk at byte {pos} has implausible sizes (compressed {csize}, raw {usize})")
        start = pos + HEADER_SIZE
        if start + csize > n:
            raise XorbError(f"chunk at byte {pos} runs past the end of the xorb")
        raw = decompress(scheme, bytes(view[start:start + csize]), usize)
        yield ChunkInfo(pos, csize, scheme, usize, chunk_hash(raw)), (raw if want_data else None)
        pos = start + csize


@dataclass(frozen=True)
class XorbIndex:
    hash: bytes
    chunks: tuple[ChunkInfo, ...]
    section_size: int      # bytes of the chunk section (what is stored)

    @property
    def raw_size(self) -> int:
        return sum(c.size for c in self.chunks)


def index_xorb(data: bytes) -> XorbIndex:
    """Parse and hash every chunk; the xorb hash is the merkle root of (chunk hash, size)."""
    chunks = tuple(info for info, _ in parse_chunks(data))
    if not chunks:
        raise XorbError("xorb has no chunks")
    h = xorb_hash([(c.hash, c.size) for c in chunks])
    return XorbIndex(h, chunks, chunks[-1].end)


def verify_xorb(data: bytes, expected_hex: str) -> XorbIndex:
    if len(data) > MAX_XORB_BYTES + (1 << 20):
        raise XorbError(f"xorb is {len(data)} bytes, over the {MAX_XORB_BYTES} byte limit")
    index = index_xorb(data)
    if hash_to_hex(index.hash) != expected_hex:
        raise XorbError(f"xorb content hashes to {hash_to_hex(index.hash)}, not {expected_hex}")
    return index
