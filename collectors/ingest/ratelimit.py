"""Token buckets: per outlet (events/s) and per client address (requests/s).

Buckets live in the memory of one worker process, so a configured rate applies
per worker; `server.py` divides the configured rates by the number of workers.
Client buckets are keyed by a hash of the address, never the address itself,
and idle buckets are dropped, so the table stays small.
"""

from __future__ import annotations

import time

__all__ = ["RateLimiter", "TokenBuckets"]


class TokenBuckets:
    """A token bucket per key: `rate` tokens/s, at most `burst` saved up."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[object, tuple[float, float]] = {}  # key → (tokens, at)

    def take(self, key: object, cost: float = 1.0, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, at = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < cost:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - cost, now)
        if len(self._buckets) > self.max_keys:
            self._forget_full(now)
        return True

    def _forget_full(self, now: float) -> None:
        """Drop buckets that have refilled: forgetting them changes nothing."""
        refill = self.burst / self.rate if self.rate else float("inf")
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}


class RateLimiter:
    """The two limits of a request: its client address and its outlet."""

    def __init__(
        self, outlet_rate: float, outlet_burst: float, client_rate: float, client_burst: float
    ) -> None:
        self.outlets = TokenBuckets(outlet_rate, outlet_burst)
        self.clients = TokenBuckets(client_rate, client_burst)

    def client_ok(self, address: str) -> bool:
        return self.clients.take(hash(address))

    def outlet_ok(self, site_id: str, events: int) -> bool:
        return self.outlets.take(site_id, float(events))
