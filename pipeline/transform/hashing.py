"""A stable hash of a target payload: what the state store compares between passes."""

from __future__ import annotations

import hashlib

__all__ = ["HASH_SIZE", "payload_hash"]

HASH_SIZE = 16


def payload_hash(encoded: bytes) -> bytes:
    """BLAKE2b-128 of the encoded payload; Struct field order makes the encoding canonical."""
    return hashlib.blake2b(encoded, digest_size=HASH_SIZE).digest()
