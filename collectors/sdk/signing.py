"""The server-to-server signature the ingest service verifies
(collectors/ingest/README.md, "Authentication"): hex HMAC-SHA256, with the
outlet's secret, over `METHOD "\\n" PATH?QUERY "\\n" TIMESTAMP "\\n"` + body,
sent with `X-PM-Site` and `X-PM-Timestamp` (Unix seconds)."""

from __future__ import annotations

import hashlib
import hmac
import time

__all__ = ["sign", "signed_headers"]


def sign(secret: bytes, method: str, path_qs: str, timestamp: str, body: bytes) -> str:
    """The hex signature of one request. `path_qs` is the path with its query
    string exactly as sent (e.g. `/v1/events?n=1f3a`)."""
    message = f"{method}\n{path_qs}\n{timestamp}\n".encode() + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def signed_headers(
    site_id: str, secret: bytes, method: str, path_qs: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """The three X-PM-* headers of a signed request made now."""
    stamp = str(int(time.time() if now is None else now))
    return {
        "X-PM-Site": site_id,
        "X-PM-Timestamp": stamp,
        "X-PM-Signature": sign(secret, method, path_qs, stamp, body),
    }
