"""Idempotency keys that fit their column without losing what makes them unique.

A key longer than its column is never cut: it keeps a readable prefix and ends
with the SHA-256 of the whole key, so two keys that share a long prefix stay
two keys. A key that fits is returned unchanged (existing rows keep matching).
"""

from __future__ import annotations

import hashlib

KEY_LIMIT = 200          # what callers may pass to the outbox and other keyed tables
DIGEST_CHARS = 64        # hex SHA-256
_SEPARATOR = "~"


def bounded_key(key: str, limit: int = KEY_LIMIT) -> str:
    """``key`` if it has at most ``limit`` characters, else ``prefix~sha256(key)`` of exactly ``limit``."""
    if len(key) <= limit:
        return key
    if limit < DIGEST_CHARS + len(_SEPARATOR) + 1:
        raise ValueError(f"a key limit below {DIGEST_CHARS + 2} cannot hold the digest")
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key[:limit - DIGEST_CHARS - len(_SEPARATOR)] + _SEPARATOR + digest
