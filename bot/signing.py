"""Signed request bodies (``X-Siyu-Signature: sha256=<hex of HMAC-SHA256>``): the generic webhook and the
archive import check them the same way."""

from __future__ import annotations

import hashlib
import hmac


def webhook_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_by(secret: str, body: bytes, given: str) -> bool:
    """Whether ``given`` (an X-Siyu-Signature header) signs ``body`` with ``secret``; constant time."""
    return bool(given) and hmac.compare_digest(webhook_signature(secret, body).encode(), given.strip().encode())
