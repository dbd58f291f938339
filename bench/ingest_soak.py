"""Soak of the ingest service (issue 8, Load): a steady rate for a long time.

Starts `pressmeter ingest serve` on 127.0.0.1 against the local Kafka (a private
topic pair, deleted afterwards), then sends browser batches at a steady rate,
bounded in events and in minutes, and prints the memory of the service (RSS of
the parent and its workers, in MiB) at the start, every 30 s and at the end,
the answers that were not 200 (errors, expected 0), the latency, and how many
events Kafka holds (expected: the number accepted, exactly once).

    eval "$(deploy/local/stack env)"
    .venv/bin/python bench/ingest_soak.py --minutes 10 --rate 2000
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests/ingest"))

from ingest_helpers import (  # noqa: E402
    BROWSER_UA,
    NEWS_KEY,
    ORIGIN,
    bench_service,
    delete_topics,
    service_pids,
)

MIB = 1 << 20


def _rss_mib(pid: int) -> float:
    """Resident memory of `pid` and its children, in MiB."""
    total = 0
    for p in service_pids(pid):
        try:
            status = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        total += int(kib) * 1024
    return total / MIB


def _kafka_count(bootstrap: str, topic: str) -> int:
    """Messages in `topic`: the sum of its partitions' end offsets."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


class Soak:
    """Requests of `batch` events sent at a steady rate, at most `concurrency`
    at once; counts answers and keeps latencies."""

    def __init__(self, url: str, rate: float, batch: int, concurrency: int) -> None:
        self.url, self.batch, self.concurrency = url, batch, concurrency
        self.interval = batch / rate
        self.statuses: Counter[int | str] = Counter()
        self.accepted = 0
        self.latencies: list[float] = []

    async def run(self, seconds: float, max_events: int, every: float, report) -> None:
        import aiohttp

        slots = asyncio.Semaphore(self.concurrency)
        started = time.monotonic()
        next_report = started + every
        connector = aiohttp.TCPConnector(limit=self.concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            tasks: set[asyncio.Task[None]] = set()
            n = 0
            while n * self.batch < max_events and time.monotonic() - started < seconds:
                await asyncio.sleep(max(0.0, started + n * self.interval - time.monotonic()))
                await slots.acquire()
                task = asyncio.create_task(self._send(session, n, slots))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                n += 1
                if time.monotonic() >= next_report:
                    report(time.monotonic() - started)
                    next_report += every
            await asyncio.gather(*tasks)

    async def _send(self, session, n: int, slots: asyncio.Semaphore) -> None:
        import orjson

        now = int(time.time() * 1000)
        events = [
            {
                "event_id": f"soak-{n}-{i}",
                "type": "page_view",
                "device_id": f"d{n % 1000}",
                "ts": now,
                "url": f"https://news1.vn/a/{n % 500}",
            }
            for i in range(self.batch)
        ]
        body = orjson.dumps({"site_id": "news1.vn", "key": NEWS_KEY, "events": events})
        headers = {"Origin": ORIGIN, "Content-Type": "text/plain", "User-Agent": BROWSER_UA}
        sent = time.perf_counter()
        try:
            async with session.post(f"{self.url}/v1/events", data=body, headers=headers) as answer:
                text = await answer.read()
                status: int | str = answer.status
        except Exception as exc:  # a refused or broken connection is an error to count
            status, text = type(exc).__name__, b""
        finally:
            slots.release()
        self.latencies.append(time.perf_counter() - sent)
        self.statuses[status] += 1
        if status == 200:
            self.accepted += orjson.loads(text)["accepted"]

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long, at most")
    parser.add_argument("--rate", type=float, default=2000.0, help="events per second")
    parser.add_argument("--batch", type=int, default=20, help="events per request")
    parser.add_argument("--workers", type=int, default=2, help="service worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight, at most")
    args = parser.parse_args()
    seconds = args.minutes * 60
    max_events = int(args.rate * seconds)

    ingest = bench_service(args.workers, prefix="pm-ingest-soak-")
    topics = ingest.topics
    ingest.start()
    assert ingest.proc is not None
    pid = ingest.proc.pid
    soak = Soak(ingest.url, args.rate, args.batch, args.concurrency)
    rss_start = _rss_mib(pid)
    print(
        f"ingest soak: {args.minutes:g} min at {args.rate:,.0f} events/s in batches of "
        f"{args.batch}, {args.workers} worker(s), at most {max_events:,} events; "
        f"RSS at start {rss_start:.1f} MiB"
    )

    def report(elapsed: float) -> None:
        errors = sum(c for s, c in soak.statuses.items() if s != 200)
        print(
            f"  {elapsed / 60:5.1f} min: {soak.accepted:>10,} accepted, errors {errors}, "
            f"RSS {_rss_mib(pid):.1f} MiB, p99 {soak.percentile(0.99):.1f} ms"
        )

    started = time.monotonic()
    try:
        asyncio.run(soak.run(seconds, max_events, 30.0, report))
        elapsed = time.monotonic() - started
        rss_end = _rss_mib(pid)
        ingest.stop()
        in_kafka = _kafka_count(topics.bootstrap, topics.events)
    finally:
        if ingest.proc is not None:
            ingest.kill9()
        delete_topics(topics)
    errors = {s: c for s, c in soak.statuses.items() if s != 200}
    print(
        f"done: {soak.accepted:,} events accepted in {elapsed:.0f} s "
        f"({soak.accepted / elapsed:,.0f} events/s), {sum(soak.statuses.values()):,} requests, "
        f"errors {sum(errors.values())} {errors or ''}; "
        f"p50 {soak.percentile(0.5):.1f} ms, p99 {soak.percentile(0.99):.1f} ms\n"
        f"RSS at start {rss_start:.1f} MiB, at end {rss_end:.1f} MiB "
        f"({rss_end - rss_start:+.1f} MiB); in Kafka {in_kafka:,} "
        f"({'=' if in_kafka == soak.accepted else '!='} accepted)"
    )
    return 0 if not errors and in_kafka == soak.accepted else 1


if __name__ == "__main__":
    sys.exit(main())
