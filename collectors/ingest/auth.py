"""Who may send events for an outlet.

Browsers carry the outlet's public site key and must come from one of its
allowed origins (the Origin header, or for the no-JavaScript pixel the Referer's
origin when the browser sends one). Server-to-server collectors sign: the
signature is HMAC-SHA256, with the outlet's secret, over

    METHOD "\\n" PATH_AND_QUERY "\\n" TIMESTAMP "\\n" BODY

sent as hex in `X-PM-Signature`, with `X-PM-Site` and `X-PM-Timestamp` (Unix
seconds). A timestamp more than `max_clock_skew_s` away from the server clock is
refused, and so is a signature seen before: replays are remembered for twice the
skew in a folder shared by all worker processes (an exclusive file create is
atomic across processes and survives a restart).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
import time
from pathlib import Path
from urllib.parse import urlsplit

from pressmeter.collectors.ingest.reasons import Refused, RequestRefusal
from pressmeter.collectors.ingest.registry import Outlet

__all__ = ["ReplayGuard", "check_browser", "check_signature", "sign"]

_BUCKET_S = 60
# ASCII digits only (str.isdigit also takes "²"), and few enough for int() and the clock.
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


def sign(secret: bytes, method: str, path_qs: str, timestamp: str, body: bytes) -> str:
    """The signature a collector sends (also used by the tests and the bench)."""
    message = f"{method}\n{path_qs}\n{timestamp}\n".encode() + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


def check_browser(outlet: Outlet, key: object, origin: str | None, referer: str | None) -> None:
    """Refuse unless `key` is the outlet's public key and the request comes from an
    allowed origin. `origin` is required for POSTs (browsers always send it
    there); the pixel passes `origin=None` and its Referer, checked if present."""
    if outlet.public_key is None or not isinstance(key, str):
        raise Refused(RequestRefusal.BAD_KEY, f"site {outlet.site_id} takes no browser key")
    if not hmac.compare_digest(key.encode(), outlet.public_key.encode()):
        raise Refused(RequestRefusal.BAD_KEY, f"wrong public key for site {outlet.site_id}")
    seen = origin if origin is not None else (_origin_of(referer) if referer else None)
    if origin is None and referer is None:
        return  # a pixel whose browser sends no Referer: the key alone names the outlet
    if seen not in outlet.allowed_origins:
        raise Refused(
            RequestRefusal.ORIGIN_NOT_ALLOWED,
            f"origin {seen or '(none)'} is not allowed for site {outlet.site_id}",
        )


class ReplayGuard:
    """Signatures already used, one file per signature in per-minute folders."""

    def __init__(self, folder: Path, keep_s: int) -> None:
        self.folder = folder
        self.keep_s = keep_s
        folder.mkdir(parents=True, exist_ok=True)
        self._last_sweep = 0.0

    def first_use(self, signature: str, now: float) -> bool:
        """True the first time `signature` is seen (across every worker)."""
        bucket = self.folder / str(int(now) // _BUCKET_S)
        bucket.mkdir(exist_ok=True)
        try:
            fd = os.open(bucket / signature, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        os.close(fd)
        # A signature is valid for ±skew, so it must be looked up in the neighbour buckets.
        for other in range((int(now) - self.keep_s) // _BUCKET_S, int(now) // _BUCKET_S):
            if (self.folder / str(other) / signature).exists():
                return False
        self._sweep(now)
        return True

    def _sweep(self, now: float) -> None:
        if now - self._last_sweep < _BUCKET_S:
            return
        self._last_sweep = now
        oldest = (int(now) - self.keep_s) // _BUCKET_S
        for entry in self.folder.iterdir():
            if entry.name.isdigit() and int(entry.name) < oldest:
                shutil.rmtree(entry, ignore_errors=True)


def check_signature(
    outlet: Outlet,
    guard: ReplayGuard,
    max_skew_s: int,
    method: str,
    path_qs: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float | None = None,
) -> None:
    """Refuse a signed request that is wrong, too old or too new, or replayed."""
    now = time.time() if now is None else now
    if outlet.secret is None:
        raise Refused(
            RequestRefusal.BAD_SIGNATURE, f"site {outlet.site_id} takes no signed traffic"
        )
    if not timestamp or not signature:
        raise Refused(
            RequestRefusal.BAD_SIGNATURE, "X-PM-Timestamp (Unix seconds) and X-PM-Signature needed"
        )
    if _UNIX_SECONDS.fullmatch(timestamp) is None:
        shown = timestamp if len(timestamp) <= 16 else timestamp[:16] + "…"
        raise Refused(
            RequestRefusal.BAD_SIGNATURE,
            f"X-PM-Timestamp must be Unix seconds (at most 12 ASCII digits), not {shown!r}",
        )
    if abs(now - int(timestamp)) > max_skew_s:
        raise Refused(
            RequestRefusal.STALE_TIMESTAMP,
            f"X-PM-Timestamp is {int(now) - int(timestamp)} s from server time "
            f"(at most ±{max_skew_s} s)",
        )
    expected = sign(outlet.secret, method, path_qs, timestamp, body)
    if not hmac.compare_digest(expected, signature.lower()):
        raise Refused(RequestRefusal.BAD_SIGNATURE, f"wrong signature for site {outlet.site_id}")
    if not guard.first_use(expected, now):
        raise Refused(RequestRefusal.REPLAYED_SIGNATURE, "this signature was already used")
