"""Xet hashes (hub-docs docs/xet/hashing.md): keyed BLAKE3 chunk hashes and the merkle aggregation.

Why here and not in hf_xet: the server must recompute every hash itself — a xorb's name, a file's id
and each term's verification hash — from the bytes it received, never trusting what the client says.
Hashes are 32 raw bytes; the string form (api.md) reads each 8-byte word as a little-endian u64.
"""

from __future__ import annotations

import re

from blake3 import blake3

DATA_KEY = bytes([102, 151, 245, 119, 91, 149, 80, 222, 49, 53, 203, 172, 165, 151, 24, 28, 157, 228, 33, 16,
                  155, 235, 43, 88, 180, 208, 176, 75, 147, 173, 242, 41])
INTERNAL_NODE_KEY = bytes([1, 126, 197, 199, 165, 71, 41, 150, 253, 148, 102, 102, 180, 138, 2, 230, 93, 221, 83,
                           111, 55, 199, 109, 210, 248, 99, 82, 230, 74, 83, 113, 63])
VERIFICATION_KEY = bytes([127, 24, 87, 214, 206, 86, 237, 102, 18, 127, 249, 19, 231, 165, 195, 243, 164, 205, 38,
                          213, 181, 219, 73, 230, 65, 36, 152, 127, 40, 251, 148, 195])
ZERO_KEY = bytes(32)
ZERO_HASH = bytes(32)
MEAN_BRANCHING = 4          # aggregated_hashes.rs: AGGREGATED_HASHES_MEAN_TREE_BRANCHING_FACTOR
MAX_GROUP = 2 * MEAN_BRANCHING + 1
HEX_RE = re.compile(r"^[0-9a-f]{64}$")


def chunk_hash(data: bytes) -> bytes:
    return blake3(data, key=DATA_KEY).digest()


def hash_to_hex(h: bytes) -> str:
    """The API string of a hash: each 8-byte word byte-reversed (a little-endian u64 in hex)."""
    return "".join(h[i:i + 8][::-1].hex() for i in range(0, 32, 8))


def hex_to_hash(s: str) -> bytes:
    """Inverse of `hash_to_hex`; ValueError for anything but 64 lowercase hex digits."""
    if not isinstance(s, str) or not HEX_RE.match(s):
        raise ValueError(f"not a Xet hash (64 lowercase hex digits): {s!r}")
    raw = bytes.fromhex(s)
    return b"".join(raw[i:i + 8][::-1] for i in range(0, 32, 8))


def _merge(group: list[tuple[bytes, int]]) -> tuple[bytes, int]:
    text = "".join(f"{hash_to_hex(h)} : {size}\n" for h, size in group)
    return blake3(text.encode(), key=INTERNAL_NODE_KEY).digest(), sum(size for _, size in group)


def _next_cut(nodes: list[tuple[bytes, int]], start: int) -> int:
    """End (exclusive) of the group starting at `start`: 2..9 nodes, cut after a hash whose last word % 4 == 0."""
    remaining = len(nodes) - start
    if remaining <= 2:
        return len(nodes)
    end = min(MAX_GROUP, remaining)
    for i in range(2, end):
        if int.from_bytes(nodes[start + i][0][24:32], "little") % MEAN_BRANCHING == 0:
            return start + i + 1
    return start + end


def aggregated_hash(chunks: list[tuple[bytes, int]]) -> bytes:
    """Root of xet-core's content-defined merkle tree over (hash, size) leaves; zero hash for no leaves."""
    if not chunks:
        return ZERO_HASH
    nodes = list(chunks)
    while len(nodes) > 1:
        merged, i = [], 0
        while i < len(nodes):
            cut = _next_cut(nodes, i)
            merged.append(_merge(nodes[i:cut]))
            i = cut
        nodes = merged
    return nodes[0][0]


def xorb_hash(chunks: list[tuple[bytes, int]]) -> bytes:
    return aggregated_hash(chunks)


def file_hash(chunks: list[tuple[bytes, int]]) -> bytes:
    """A file's id: the aggregated hash keyed once more with 32 zero bytes (zero hash for an empty file)."""
    if not chunks:
        return ZERO_HASH
    return blake3(aggregated_hash(chunks), key=ZERO_KEY).digest()


def verification_hash(chunk_hashes: list[bytes]) -> bytes:
    """A shard term's proof that the uploader knows the chunk hashes of the range it references."""
    return blake3(b"".join(chunk_hashes), key=VERIFICATION_KEY).digest()
