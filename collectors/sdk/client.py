"""The sending client: a bounded queue, one background sender thread, signed
batches, retries.

    caller threads ── send() ──▶ bounded queue ──▶ sender thread ──▶ POST /v1/events
                                                     (batch, sign, retry)

- **Batching**: a request leaves when `batch_size` events wait, when the oldest
  waiting event is `flush_interval_s` old, or on `flush()`/`close()`. A batch
  whose JSON body would exceed `max_body_bytes` is split.
- **Retries**: network errors, 5xx and 429 are retried up to `max_attempts`
  with exponential backoff and jitter (`backoff_initial_s` doubling up to
  `backoff_max_s`, each wait drawn from [d/2, d]); a `Retry-After` header is
  honoured (the wait is at least what it says, up to `backoff_max_s`). Each
  attempt is signed anew with a fresh nonce in the query string: ingest accepts
  a signature once, and remembers it even when it answers 503.
  Other 4xx answers (bad signature, unknown site...) are not retried.
- **Delivery is at least once**: an attempt whose answer is lost is sent again
  with the same event ids; the pipeline counts such copies once
  (docs/standard.md §2, dedup on site_id + event_id).
- **Queue full**: `send()` raises `QueueFull` and counts the event in
  `stats.refused_queue_full`; nothing already queued is dropped. With
  `block_timeout_s` > 0, `send()` first waits that long for room.
- **Failures** (retries exhausted, a 4xx, events ingest rejected one by one)
  are counted in `stats` and passed to `on_failure(events, reason)`, called on
  the sender thread, and logged on logger `pressmeter.sdk`.
"""

from __future__ import annotations

import collections
import email.utils
import http.client
import json
import logging
import random
import ssl
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import ClientClosed, QueueFull
from .events import check_event
from .signing import signed_headers

__all__ = ["Client", "ClientStats", "FailureHandler"]

log = logging.getLogger("pressmeter.sdk")

FailureHandler = Callable[[list[dict[str, Any]], str], None]
_PATH = "/v1/events"
_NETWORK_ERRORS = (OSError, http.client.HTTPException)


@dataclass(frozen=True)
class ClientStats:
    """Counters since the client was made (a consistent snapshot)."""

    queued: int  # events waiting in the local queue now
    enqueued: int  # events send() accepted
    refused_queue_full: int  # events send() refused with QueueFull
    accepted: int  # events ingest accepted (in Kafka or its spool)
    rejected: int  # events ingest refused one by one (their reason went to on_failure)
    failed: int  # events given up: retries exhausted, a 4xx, or close() timed out
    requests: int  # HTTP attempts made
    retries: int  # attempts that were retries


class _Retry(Exception):
    def __init__(self, reason: str, after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.after_s = after_s


class _GiveUp(Exception):
    pass


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class Client:
    """Sends canonical events to the ingest service, signed as the outlet's server.

    >>> client = Client("https://ingest.example.vn", "tv1.vn", secret=b"...")
    >>> client.send(page_view("https://tv1.vn/a", device_id="stb-1"))
    >>> client.close()

    Thread-safe: any number of threads may call `send()`; one background thread
    sends. `flush()` waits until every event sent before it is delivered or
    failed; `close()` flushes, then stops the thread. Also a context manager.
    """

    def __init__(
        self,
        endpoint: str,
        site_id: str,
        secret: bytes | str,
        *,
        batch_size: int = 100,
        flush_interval_s: float = 1.0,
        max_queue: int = 10_000,
        block_timeout_s: float = 0.0,
        max_attempts: int = 8,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        timeout_s: float = 10.0,
        max_body_bytes: int = 1 << 20,
        on_failure: FailureHandler | None = None,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "pressmeter-sdk-python/1",
    ) -> None:
        """`endpoint`: the ingest base URL (http or https, no path needed);
        `secret`: the outlet's signing secret from the registry. `batch_size`
        is at most 500 (ingest's `max_events`)."""
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint must be an http(s) URL: {endpoint!r}")
        if not 1 <= batch_size <= 500:
            raise ValueError("batch_size must be 1..500 (ingest takes at most 500 per request)")
        if max_queue < 1 or max_attempts < 1:
            raise ValueError("max_queue and max_attempts must be >= 1")
        self.site_id = site_id
        self._secret = secret.encode() if isinstance(secret, str) else secret
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = parts.port
        self._base = parts.path.rstrip("/")
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_queue = max_queue
        self.block_timeout_s = block_timeout_s
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self.on_failure = on_failure
        self._ssl = ssl_context
        self._user_agent = user_agent
        self._conn: http.client.HTTPConnection | None = None

        self._cond = threading.Condition()
        self._queue: collections.deque[tuple[float, dict[str, Any]]] = collections.deque()
        self._enqueued = 0  # sequence number of the last event queued
        self._handled = 0  # events whose fate is known (accepted, rejected or failed)
        self._flush_wanted = 0  # a flush() waits for events up to this sequence number
        self._closing = False
        self._abandon = False
        self._counts = collections.Counter[str]()
        self._thread = threading.Thread(target=self._run, name="pressmeter-sdk-sender", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- callers

    def send(self, event: Mapping[str, Any]) -> None:
        """Queue one event (a dict as the builders in `events` make). Returns at
        once. Raises `QueueFull` (event not queued, counted) when the queue holds
        `max_queue` events after waiting `block_timeout_s`; `ClientClosed` after
        `close()`; `InvalidEvent` for something that is not a canonical event."""
        check_event(event)
        item = dict(event)
        item.setdefault("site_id", self.site_id)
        with self._cond:
            if self._closing:
                raise ClientClosed("the client is closed")
            if len(self._queue) >= self.max_queue and self.block_timeout_s > 0:
                self._cond.wait_for(
                    lambda: len(self._queue) < self.max_queue or self._closing,
                    self.block_timeout_s,
                )
                if self._closing:
                    raise ClientClosed("the client is closed")
            if len(self._queue) >= self.max_queue:
                self._counts["refused_queue_full"] += 1
                raise QueueFull(
                    f"{len(self._queue)} events are waiting (max_queue {self.max_queue}); "
                    f"event {item['event_id']} was not queued"
                )
            self._queue.append((time.monotonic(), item))
            self._enqueued += 1
            if len(self._queue) == 1 or len(self._queue) >= self.batch_size:
                self._cond.notify_all()  # the sender starts its interval, or sends

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is queued now, without waiting for the batch to fill; wait
        until every event queued before this call is accepted, rejected or failed.
        False if `timeout` (seconds) ran out first."""
        with self._cond:
            target = self._enqueued
            self._flush_wanted = max(self._flush_wanted, target)
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._handled >= target, timeout)

    def close(self, timeout: float | None = 30.0) -> bool:
        """Refuse new events, flush, stop the sender thread. Events still unsent
        when `timeout` runs out are counted as failed and passed to `on_failure`.
        True if everything was delivered in time. Idempotent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        done = self.flush(timeout)
        if not done:
            with self._cond:
                self._abandon = True
                self._cond.notify_all()
        self._thread.join()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        return done

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> ClientStats:
        with self._cond:
            c = self._counts
            return ClientStats(
                queued=len(self._queue),
                enqueued=self._enqueued,
                refused_queue_full=c["refused_queue_full"],
                accepted=c["accepted"],
                rejected=c["rejected"],
                failed=c["failed"],
                requests=c["requests"],
                retries=c["retries"],
            )

    # ---------------------------------------------------------- sender thread

    def _next_batch(self) -> list[dict[str, Any]] | None:
        """Wait for a batch to be due; None when closing and nothing is left."""
        with self._cond:
            while True:
                if self._abandon:
                    return self._take(len(self._queue)) or None
                if self._queue:
                    oldest = self._queue[0][0]
                    due = (
                        len(self._queue) >= self.batch_size
                        or self._closing
                        or self._flush_wanted > self._handled
                        or time.monotonic() - oldest >= self.flush_interval_s
                    )
                    if due:
                        return self._take(self.batch_size)
                    self._cond.wait(max(0.0, oldest + self.flush_interval_s - time.monotonic()))
                elif self._closing:
                    return None
                else:
                    self._cond.wait()

    def _take(self, count: int) -> list[dict[str, Any]]:
        batch = [self._queue.popleft()[1] for _ in range(min(count, len(self._queue)))]
        self._cond.notify_all()  # room for senders blocked on a full queue
        return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                if self._abandon:
                    self._fail(batch, "client closed before the events could be sent")
                else:
                    self._deliver(batch)
            except Exception as exc:  # a bug must not kill the sender and hang flush()
                log.exception("pressmeter sdk: unexpected error while sending")
                self._fail(batch, f"unexpected error: {exc!r}")
            with self._cond:
                self._handled += len(batch)
                self._cond.notify_all()

    def _deliver(self, batch: list[dict[str, Any]]) -> None:
        body = json.dumps({"events": batch}, separators=(",", ":")).encode()
        if len(body) > self.max_body_bytes and len(batch) > 1:
            half = len(batch) // 2
            self._deliver(batch[:half])
            self._deliver(batch[half:])
            return
        for attempt in range(1, self.max_attempts + 1):
            if attempt > 1:
                self._count("retries")
            try:
                self._post(batch, body)
                return
            except _GiveUp as exc:
                self._fail(batch, str(exc))
                return
            except _Retry as exc:
                if attempt == self.max_attempts or self._abandon:
                    self._fail(batch, f"gave up after {attempt} attempts: {exc.reason}")
                    return
                delay = self._backoff(attempt, exc.after_s)
                log.info("pressmeter sdk: %s; retry %d in %.2f s", exc.reason, attempt, delay)
                with self._cond:
                    self._cond.wait_for(lambda: self._abandon, delay)

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        ceiling = min(self.backoff_max_s, self.backoff_initial_s * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.backoff_max_s))
        return delay

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._scheme == "https":
                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout_s, context=self._ssl
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout_s
                )
        return self._conn

    def _post(self, batch: list[dict[str, Any]], body: bytes) -> None:
        """One attempt: returns when ingest answered 200; raises _Retry or _GiveUp."""
        path_qs = f"{self._base}{_PATH}?n={uuid.uuid4().hex}"
        headers = signed_headers(self.site_id, self._secret, "POST", path_qs, body)
        headers.update({"Content-Type": "application/json", "User-Agent": self._user_agent})
        self._count("requests")
        try:
            conn = self._connection()
            conn.request("POST", path_qs, body=body, headers=headers)
            response = conn.getresponse()
            status = response.status
            answer = response.read()
            retry_after = _retry_after(response.getheader("Retry-After"))
            if response.will_close:
                self._drop_connection()
        except _NETWORK_ERRORS as exc:
            self._drop_connection()
            raise _Retry(f"network error: {exc!r}") from None
        if status == 200:
            self._accepted(batch, answer)
            return
        detail = answer[:300].decode("utf-8", "replace")
        if status == 429 or status >= 500:
            raise _Retry(f"HTTP {status} {detail}", retry_after)
        raise _GiveUp(f"HTTP {status} {detail}")

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _accepted(self, batch: list[dict[str, Any]], answer: bytes) -> None:
        try:
            result = json.loads(answer)
            rejected = result.get("rejected") or []
        except (ValueError, AttributeError):
            rejected = []
        self._count("accepted", len(batch) - len(rejected))
        if not rejected:
            return
        self._count("rejected", len(rejected))
        for item in rejected:
            index = item.get("index", -1)
            event = batch[index] if isinstance(index, int) and 0 <= index < len(batch) else {}
            reason = f"rejected: {item.get('reason')}: {item.get('detail')}"
            log.warning("pressmeter sdk: event %s %s", event.get("event_id"), reason)
            self._report([event], reason)

    def _fail(self, batch: list[dict[str, Any]], reason: str) -> None:
        self._count("failed", len(batch))
        log.warning("pressmeter sdk: %d events failed: %s", len(batch), reason)
        self._report(batch, reason)

    def _report(self, events: list[dict[str, Any]], reason: str) -> None:
        if self.on_failure is None:
            return
        try:
            self.on_failure(events, reason)
        except Exception:
            log.exception("pressmeter sdk: on_failure raised")

    def _count(self, name: str, n: int = 1) -> None:
        with self._cond:
            self._counts[name] += n
