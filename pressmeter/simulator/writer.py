"""Writing the events file: each event becomes its line(s), with the ingest delay
and the dirt a real collector sees (retried duplicates, late and broken lines),
and lines go out in `received_at` order, in large chunks.

Speed matters (the benchmark writes a million events): lines are serialized with
orjson as soon as they are made; the gzip header carries no time stamp, so the
same seed gives the same bytes.
"""

from __future__ import annotations

import gzip
import math
from collections import defaultdict
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from random import Random
from typing import IO, Any

import orjson

__all__ = ["MALFORMED_KINDS", "NOISE", "Emitter", "LineSink", "NoiseShares", "open_events"]

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
DELAY_MEAN_MS = 300  # ingest delay: 50 ms + exponential, capped at 3 s
LATE_MS = (HOUR_MS, 6 * HOUR_MS)
DUPLICATE_DELAY_MS = (200, 120_000)
MALFORMED_KINDS = (
    "not_json",
    "missing_device_id",
    "fractional_ts",
    "string_ts",
    "unknown_type",
    "ts_out_of_window",
)
# Hot-path constants, bound once (emit runs once per line).
_LATE_LOW, _LATE_SPAN = LATE_MS[0], LATE_MS[1] - LATE_MS[0]
_MINUS_DELAY_MEAN = -DELAY_MEAN_MS
_log, _dumps = math.log, orjson.dumps
CHUNK_LINES = 4_096  # about 2 MB a write; orjson output holds 4 KB each until joined
GZIP_LEVEL = 1  # the benchmark writes hundreds of MB: favour speed over size


@dataclass(frozen=True)
class NoiseShares:
    """How much dirt to inject; each kind is counted in the summary.

    Shares are of events (lines) unless said otherwise. Bots and empty user agents
    get ip_class `unknown`, and data-centre visits get a browser user agent, so each
    IVT rule of docs/standard.md §2 is exercised on its own.
    """

    bot_ua: float = 0.02  # events from known crawlers and scripts (GIVT-UA)
    empty_ua: float = 0.002  # events with an empty user agent (GIVT-UA)
    datacenter: float = 0.01  # human visits from a data-centre IP: VPNs, cloud browsers
    duplicate: float = 0.005  # events sent twice by a client retry (same event_id)
    late: float = 0.005  # events received 1 to 6 hours late (an app's offline queue)
    malformed: float = 0.0005  # events replaced by a broken line (rejected by ingest)
    rate_burst_every_days: int = 3  # one day in this many gets 1 or 2 SIVT-RATE devices


NOISE = NoiseShares()


def open_events(path: Path, gz: bool) -> tuple[IO[bytes], IO[bytes]]:
    """The raw file and the stream to write to: gzip without name or time stamp if `gz`."""
    raw = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed by the caller
    if gz:
        return raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0
        )
    return raw, raw


class LineSink:
    """Puts lines in received_at order and writes them in large chunks.

    Lines wait in one bucket per minute of received_at. Visits are generated in
    order of their start, and an event is never received before its visit starts,
    so once a visit starting at S is due, every bucket before S's minute is final.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        # minute of received_at -> [(received_at, line)]; Emitter appends here directly
        self.buckets: defaultdict[int, list[tuple[int, bytes]]] = defaultdict(list)
        self._next_minute: int | None = None
        self._ready: list[bytes] = []

    def flush_before(self, ms: int) -> None:
        """Release every line received before the minute of `ms`."""
        minute = ms // MINUTE_MS
        nxt = minute if self._next_minute is None else self._next_minute
        while nxt < minute:
            self._release(nxt)
            nxt += 1
        self._next_minute = nxt
        if len(self._ready) >= CHUNK_LINES:
            self._write()

    def close(self) -> None:
        for minute in sorted(self.buckets):
            self._release(minute)
        self._write()

    def _release(self, minute: int) -> None:
        bucket = self.buckets.pop(minute, None)
        if bucket:
            bucket.sort(key=itemgetter(0))  # stable: ties keep generation order
            self._ready.extend([line for _, line in bucket])

    def _write(self) -> None:
        if self._ready:
            self._ready.append(b"")
            self._stream.write(b"\n".join(self._ready))
            self._ready = []


class Emitter:
    """Turns one event into its line(s): ids, ingest delay, duplicates, late and broken lines.

    Also counts what it wrote, by the same rules a reader of the file would apply,
    so the summary can be checked against a recount.
    """

    def __init__(self, rng: Random, sink: LineSink, noise: NoiseShares) -> None:
        self._rng = rng
        self._random, self._getrandbits = rng.random, rng.getrandbits  # the hot path
        self._buckets = sink.buckets  # appended to directly
        self._late_cut = noise.late
        self._duplicate_cut = self._late_cut + noise.duplicate
        self._malformed_cut = self._duplicate_cut + noise.malformed
        self.lines = 0
        self.counts: dict[str, int] = defaultdict(int)

    def emit(
        self,
        etype: str,
        ts: int,
        base: dict[str, str],
        extra: dict[str, Any],
        noise_key: str | None = None,
    ) -> None:
        """Write one event of `etype` at `ts`; `noise_key` names the injected kind it counts as."""
        random = self._random
        r = random()
        if r < self._late_cut:
            received = ts + _LATE_LOW + int(random() * _LATE_SPAN)
        else:
            delay = int(_MINUS_DELAY_MEAN * _log(1.0 - random()))  # exponential
            received = ts + 50 + (delay if delay < 2_950 else 2_950)
        event = {
            "event_id": f"{self._getrandbits(64):016x}",
            "type": etype,
            "ts": ts,
            "received_at": received,
            **base,
            **extra,
        }
        counts = self.counts
        buckets = self._buckets
        if self._duplicate_cut <= r < self._malformed_cut:
            buckets[received // MINUTE_MS].append((received, self._malform(event)))
            self.lines += 1
            counts["malformed"] += 1
            return
        buckets[received // MINUTE_MS].append((received, _dumps(event)))
        copies = 1
        if r < self._late_cut:
            counts["late"] += 1
        elif r < self._duplicate_cut:
            delay = DUPLICATE_DELAY_MS[0] + int(random() * DUPLICATE_DELAY_MS[1])
            event["received_at"] = received = received + delay
            buckets[received // MINUTE_MS].append((received, _dumps(event)))
            counts["duplicates"] += 1
            copies = 2
        self.lines += copies
        counts[etype] += copies
        if noise_key:
            counts[noise_key] += copies

    def _malform(self, event: dict[str, Any]) -> bytes:
        """A line ingest must reject, of one of the kinds docs/standard.md §2 names."""
        kind = MALFORMED_KINDS[int(self._rng.random() * len(MALFORMED_KINDS))]
        self.counts[f"malformed:{kind}"] += 1
        if kind == "not_json":  # a truncated upload; cut at a comma to stay valid UTF-8
            line = orjson.dumps(event)
            return line[: line.index(b",", len(line) // 2)]
        if kind == "missing_device_id":
            del event["device_id"]
        elif kind == "fractional_ts":
            event["ts"] += 0.5
        elif kind == "string_ts":
            event["ts"] = str(event["ts"])
        elif kind == "unknown_type":
            event["type"] = "click"
        else:  # a device clock four days behind
            event["ts"] = event["received_at"] - 4 * DAY_MS
        return orjson.dumps(event)
