"""The live pipeline on the real Kafka and ClickHouse, on Prism, as an operator runs
it (`pressmeter pipeline live`): exact figures per minute for a known stream, the
lateness boundary, and restarts (SIGTERM, kill -9) mid-stream.

Streams are historical (November 2026) with Kafka timestamps set by the test, so
the figures, the lateness verdicts and the watermark do not depend on the wall
clock; each test has its own topic, consumer group and database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from support import MINUTE, PRESSMETER, empty_store, event, kafka_bootstrap, local_ms

from pressmeter.pipelines.live import LiveTiming
from pressmeter.store import open_store

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

LATENESS_S = 20
T0 = local_ms("2026-11-02 10:00")
BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
SITE_COLUMNS = "page_views, play_ms, readers, viewers, concurrent_plays, ivt_events"


def minute(n: int) -> int:
    return T0 + n * MINUTE


class Stream:
    """A topic of its own; records are sent with the Kafka timestamp the test gives."""

    def __init__(self, partitions: int = 3) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient, NewTopic

        self.bootstrap = kafka_bootstrap()
        self.topic = f"live.test.{uuid.uuid4().hex[:10]}"
        self.partitions = partitions
        self._admin = AdminClient({"bootstrap.servers": self.bootstrap})
        # Kept whatever their age: Kafka's time retention (7 days) judges records by
        # their timestamps, and deleted these historical ones once, just after the
        # test sent them.
        kept = NewTopic(self.topic, partitions, 1, config={"retention.ms": "-1"})
        self._admin.create_topics([kept])[self.topic].result()
        self._producer = Producer({"bootstrap.servers": self.bootstrap, "linger.ms": 5})

    def send(self, *records: tuple[dict[str, Any] | str, int], partition: int = 0) -> None:
        """(event or raw line, Kafka timestamp) pairs, in order, to one partition."""
        for item, record_ms in records:
            value = item.encode() if isinstance(item, str) else orjson.dumps(item)
            self._producer.produce(self.topic, value, partition=partition, timestamp=record_ms)
        self._producer.flush(10)

    def push_watermark(self, record_ms: int) -> None:
        """A record (an invalid line, rejected) in every partition, sent at `record_ms`."""
        for partition in range(self.partitions):
            self.send(("{}", record_ms), partition=partition)

    def committed(self, group: str) -> list[int]:
        from confluent_kafka import Consumer, TopicPartition

        reader = Consumer({"bootstrap.servers": self.bootstrap, "group.id": group})
        try:
            parts = [TopicPartition(self.topic, p) for p in range(self.partitions)]
            return [p.offset for p in reader.committed(parts, timeout=10)]
        finally:
            reader.close()

    def delete(self) -> None:
        self._admin.delete_topics([self.topic])[self.topic].result()


def sent(item: dict[str, Any], delay_ms: int = 1_000) -> tuple[dict[str, Any], int]:
    """An event sent by ingest `delay_ms` after its ts."""
    return item, item["ts"] + delay_ms


class LiveJob:
    """`pressmeter pipeline live` in a process of its own, its output in a log file."""

    def __init__(self, stream: Stream, store_url: str, folder: Path) -> None:
        self.stream, self.store_url, self.folder = stream, store_url, folder
        self.group = f"live-{uuid.uuid4().hex[:8]}"
        self.process: subprocess.Popen[bytes] | None = None
        self._starts = 0

    def start(self, lateness_s: int = LATENESS_S) -> None:
        self._starts += 1
        log = (self.folder / f"live{self._starts}.log").open("wb")
        args = [str(PRESSMETER), "pipeline", "live", "--kafka", self.stream.bootstrap]
        args += ["--topic", self.stream.topic, "--group", self.group, "--store", self.store_url]
        args += ["--allowed-lateness", str(lateness_s), "--from-beginning"]
        self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def children(self) -> list[int]:
        """Processes the job started (Prism), to clean up after a kill -9."""
        assert self.process is not None
        found = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            # A thread may end between the listing and the read: it has no children then.
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                found += [int(p) for p in (task / "children").read_text().split()]
        return found

    def stop(self, how: signal.Signals = signal.SIGTERM) -> int:
        assert self.process is not None
        orphans = self.children() if how == signal.SIGKILL else []
        self.process.send_signal(how)
        code = self.process.wait(timeout=60)
        for pid in orphans:  # what a supervisor does after a kill -9 of the job
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process = None
        return code

    def log(self) -> str:
        logs = sorted(self.folder.glob("live*.log"))
        return "\n".join(p.read_text(errors="replace") for p in logs)


@pytest.fixture
def stream() -> Iterator[Stream]:
    topic = Stream()
    yield topic
    topic.delete()


@pytest.fixture
def live(stream: Stream, tmp_path: Path) -> Iterator[LiveJob]:
    with empty_store("server", tmp_path) as url:
        job = LiveJob(stream, url, tmp_path)
        yield job
        if job.process is not None:
            job.stop(signal.SIGKILL)


def site_figures(store_url: str) -> dict[tuple[str, int], tuple[int, ...]]:
    """(site, minute n) → (page_views, play_ms, readers, viewers, concurrent_plays, ivt)."""
    rows = open_store(store_url, migrate=False).rows(
        f"SELECT site_id, toUInt64(minute) * 1000, {SITE_COLUMNS}, status "
        "FROM live_site_minutes FINAL"
    )
    assert {row[-1] for row in rows} <= {"preliminary"}
    return {(r[0], (r[1] - T0) // MINUTE): tuple(r[2:-1]) for r in rows}


def channel_figures(store_url: str) -> dict[tuple[str, str, int], tuple[int, int]]:
    rows = open_store(store_url, migrate=False).rows(
        "SELECT site_id, channel_id, toUInt64(minute) * 1000, concurrent_plays, play_ms "
        "FROM live_channel_minutes FINAL"
    )
    return {(r[0], r[1], (r[2] - T0) // MINUTE): (r[3], r[4]) for r in rows}


def wait_for(read: Callable[[], Any], expected: Any, job: LiveJob, timeout: float = 90) -> Any:
    """Polls `read` until it returns `expected` (or the time is up); returns the last read."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # the tables appear when the job has migrated
            seen = read()
        if seen == expected:
            return seen
        assert job.process is None or job.process.poll() is None, job.log()[-4000:]
        time.sleep(0.5)
    return seen


def view(at: int, device: str, **fields: Any) -> dict[str, Any]:
    return event(at=at, device=device, site="news1.vn", **fields)


def heartbeat(at: int, device: str, play: str, channel: str, played_ms: int, **fields: Any) -> dict:
    """A media event of tv1.vn."""
    return event(
        "media",
        at=at,
        device=device,
        site="tv1.vn",
        **{"media_id": "live-1", "action": "heartbeat", **fields},
        play_id=play,
        channel_id=channel,
        played_ms=played_ms,
    )


def known_stream() -> tuple[list, list]:
    """news1.vn (partition 0) and tv1.vn (partition 1) over minutes 0-2 of T0."""
    b_view = view(minute(0) + 10_000, "B")
    news = [
        sent(view(minute(0), "A")),
        sent(b_view),
        sent(b_view),  # a second copy: a duplicate
        sent(view(minute(0) + 20_000, "C")),
        sent(event("engagement", at=minute(0) + 30_000, device="A", site="news1.vn")),
        sent(view(minute(0) + 40_000, "G", ua=BOT_UA)),  # GIVT-UA
        sent(view(minute(0) + 50_000, "H", ip_class="datacenter")),  # GIVT-DC
        ("not json", minute(0) + 55_000),  # rejected
        sent(view(minute(1) + 5_000, "D")),
        # 31 page views of R in one minute: SIVT-RATE, all IVT in minute 2.
        *(sent(view(minute(2) + i * 1_000, "R")) for i in range(31)),
        sent(view(minute(2) + 40_000, "A")),
        # Z's page view of minute 0, sent 1 s after the allowed lateness: not live.
        (view(minute(0) + 45_000, "Z"), minute(1) + LATENESS_S * 1000 + 1_000),
    ]
    tv = [
        sent(heartbeat(minute(1), "V1", "p1", "VTV1", 0, action="start")),
        sent(heartbeat(minute(1) + 30_000, "V1", "p1", "VTV1", 30_000)),
        sent(heartbeat(minute(1) + 40_000, "V2", "p2", "VTV3", 90_000)),  # capped at 60 s
        sent(heartbeat(minute(1) + 50_000, "V3", "p3", "VTV1", 30_000, ua=BOT_UA)),
        sent(heartbeat(minute(2) + 10_000, "V1", "p1", "VTV1", 30_000)),
    ]
    return news, tv


# Worked by hand: (page_views, play_ms, readers, viewers, concurrent_plays, ivt_events).
# Readers and viewers: distinct devices of the minute and the 4 before. R is IVT in
# minute 2 (SIVT-RATE is judged within a minute live) but counts as a reader in the
# minutes after it; the batch removes R for the whole day (docs/live.md).
KNOWN_SITES = {
    ("news1.vn", 0): (3, 0, 3, 0, 0, 2),  # A, B, C; G and H are IVT; B's copy, Z: not
    ("news1.vn", 1): (1, 0, 4, 0, 0, 0),  # + D
    ("news1.vn", 2): (1, 0, 4, 0, 0, 31),  # A again; R's 31 are IVT
    ("news1.vn", 3): (0, 0, 5, 0, 0, 0),  # A, B, C, D, R
    ("news1.vn", 4): (0, 0, 5, 0, 0, 0),
    ("news1.vn", 5): (0, 0, 3, 0, 0, 0),  # D, A, R
    ("news1.vn", 6): (0, 0, 2, 0, 0, 0),  # A, R
    ("tv1.vn", 1): (0, 90_000, 0, 2, 2, 1),  # p1 0 + 30 s, p2 capped at 60 s; V3 a bot
    ("tv1.vn", 2): (0, 30_000, 0, 2, 1, 0),  # V1 now, V2 in minute 1
    ("tv1.vn", 3): (0, 0, 0, 2, 0, 0),
    ("tv1.vn", 4): (0, 0, 0, 2, 0, 0),
    ("tv1.vn", 5): (0, 0, 0, 2, 0, 0),
    ("tv1.vn", 6): (0, 0, 0, 1, 0, 0),  # V1 of minute 2
}
KNOWN_CHANNELS = {
    ("tv1.vn", "VTV1", 1): (1, 30_000),  # p3 is IVT
    ("tv1.vn", "VTV3", 1): (1, 60_000),
    ("tv1.vn", "VTV1", 2): (1, 30_000),
}


def test_known_stream_gives_exact_figures_per_minute(stream: Stream, live: LiveJob) -> None:
    news, tv = known_stream()
    stream.send(*news, partition=0)
    stream.send(*tv, partition=1)
    live.start()
    assert wait_for(lambda: site_figures(live.store_url), KNOWN_SITES, live) == KNOWN_SITES
    # A separate insert, just after the sites'.
    assert wait_for(lambda: channel_figures(live.store_url), KNOWN_CHANNELS, live) == KNOWN_CHANNELS


def test_lateness_boundary(stream: Stream, live: LiveJob) -> None:
    """An event sent 1 s inside the allowed lateness (the default, 120 s) after its
    minute updates the minute; one sent 1 s outside it does not (it is the batch's)."""
    lateness_ms = LiveTiming().lateness_ms
    end = minute(1)  # minute 0 ends here
    on_time = [sent(view(minute(0) + 1_000 * i, f"d{i}")) for i in range(3)]
    stream.send(*on_time)
    live.start(lateness_s=lateness_ms // 1000)
    first = {("news1.vn", n): (0, 0, 3, 0, 0, 0) for n in range(1, 5)}
    first[("news1.vn", 0)] = (3, 0, 3, 0, 0, 0)
    assert wait_for(lambda: site_figures(live.store_url), first, live) == first
    outside = view(minute(0) + 58_000, "late-out")
    inside = view(minute(0) + 59_000, "late-in")
    stream.send((outside, end + lateness_ms + 1_000), (inside, end + lateness_ms - 1_000))
    # The late reader also counts in the next 4 minutes' readers.
    updated = {("news1.vn", n): (0, 0, 4, 0, 0, 0) for n in range(1, 5)}
    updated[("news1.vn", 0)] = (4, 0, 4, 0, 0, 0)
    assert wait_for(lambda: site_figures(live.store_url), updated, live) == updated
    time.sleep(3)  # the later record was read first: nothing more may arrive
    assert site_figures(live.store_url) == updated


def test_restart_mid_stream_counts_each_event_once(stream: Stream, live: LiveJob) -> None:
    """Stopped (SIGTERM) and killed (-9) while minutes are open, the job resumes
    from its committed positions: every minute exact, none counted twice."""
    views = lambda n, count, at: [  # noqa: E731
        sent(view(minute(n) + at + i * 100, f"m{n}-{at}-{i}")) for i in range(count)
    ]
    # Minutes 0-1, then minute 13 opens: by then minutes 0-1 are final, and the
    # positions of their records are committed (the live horizon is 10.5 minutes).
    stream.send(*views(0, 5, 0), *views(1, 4, 0))
    stream.push_watermark(minute(13))
    stream.send(*views(13, 3, 1_000))
    live.start()
    before_stop = {("news1.vn", 0): 5, ("news1.vn", 1): 4, ("news1.vn", 13): 3}
    page_views = lambda: {k: v[0] for k, v in site_figures(live.store_url).items() if v[0]}  # noqa: E731
    assert wait_for(page_views, before_stop, live) == before_stop
    # Committed: the 9 records of minutes 0-1, not the minute-13 ones (nor the push).
    assert wait_for(lambda: stream.committed(live.group)[0], 9, live) == 9
    assert live.stop(signal.SIGTERM) == 0

    stream.send(*views(13, 2, 10_000), *views(14, 6, 0))  # minute 13 goes on, 14 begins
    live.start()
    resumed = {**before_stop, ("news1.vn", 13): 5, ("news1.vn", 14): 6}
    assert wait_for(page_views, resumed, live) == resumed
    live.stop(signal.SIGKILL)
    # Minutes 13 and 14 are still open: none of their records may be committed (a
    # restart reading a backlog once moved the watermark to the wall clock).
    assert stream.committed(live.group)[0] == 9

    stream.send(*views(14, 4, 20_000), *views(15, 1, 0))
    live.start()
    final = {**resumed, ("news1.vn", 14): 10, ("news1.vn", 15): 1}
    assert wait_for(page_views, final, live) == final
    figures = site_figures(live.store_url)
    # Readers of the last 5 minutes: each device once, whatever the restarts.
    assert figures[("news1.vn", 15)][2] == 3 + 2 + 10 + 1
    assert figures[("news1.vn", 1)][2] == 5 + 4
    assert "pressmeter: error" not in live.log()
