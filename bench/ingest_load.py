"""Loopback load generator for the ingest service (issue 3, item 9).

Starts `pressmeter ingest serve` on 127.0.0.1 against the local Kafka (a private
topic pair, deleted afterwards; acks=all, idempotent), then sends browser
batches of 1 and of 20 events from a separate client process, bounded in
requests and in seconds, and prints per batch size: accepted events/s, events
per CPU-second of the service (its processes' user+system time: the per-core
figure, independent of what else the machine runs), and p50/p99 latency.

    eval "$(deploy/local/stack env)"
    .venv/bin/python bench/ingest_load.py --workers 1 --seconds 15
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import time
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


def _cpu_seconds(pid: int) -> float:
    """User+system CPU time of `pid` and its children that are still running."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for p in service_pids(pid):
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def _load(url: str, batch: int, requests: int, seconds: float, concurrency: int) -> dict:
    import aiohttp
    import orjson

    latencies: list[float] = []
    accepted = 0
    errors = 0
    sent = 0
    deadline = time.monotonic() + seconds
    headers = {"Origin": ORIGIN, "Content-Type": "text/plain", "User-Agent": BROWSER_UA}

    async def client(session: aiohttp.ClientSession, worker: int) -> None:
        nonlocal accepted, errors, sent
        n = 0
        while sent < requests and time.monotonic() < deadline:
            sent += 1
            n += 1
            now = int(time.time() * 1000)
            events = [
                {
                    "event_id": f"b{worker}-{n}-{i}",
                    "type": "page_view",
                    "device_id": f"d{worker}",
                    "ts": now,
                    "url": "https://news1.vn/a",
                }
                for i in range(batch)
            ]
            body = orjson.dumps({"site_id": "news1.vn", "key": NEWS_KEY, "events": events})
            started = time.perf_counter()
            async with session.post(f"{url}/v1/events", data=body, headers=headers) as response:
                answer = await response.read()
            latencies.append(time.perf_counter() - started)
            if response.status == 200:
                accepted += orjson.loads(answer)["accepted"]
            else:
                errors += 1

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session, w) for w in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "accepted": accepted,
        "errors": errors,
        "seconds": elapsed,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
    }


def _client_process(url: str, batch: int, requests: int, seconds: float, conc: int, out) -> None:
    out.put(asyncio.run(_load(url, batch, requests, seconds, conc)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=1, help="service worker processes")
    parser.add_argument("--seconds", type=float, default=15.0, help="per batch size, at most")
    parser.add_argument("--events", type=int, default=200_000, help="per batch size, at most")
    parser.add_argument("--concurrency", type=int, default=32, help="connections in flight")
    parser.add_argument("--batches", default="1,20", help="batch sizes")
    args = parser.parse_args()

    ingest = bench_service(args.workers)
    topics = ingest.topics
    ingest.start()
    assert ingest.proc is not None
    context = multiprocessing.get_context("spawn")
    print(
        f"ingest bench: {args.workers} worker(s), {os.cpu_count()} cores on this machine, "
        f"concurrency {args.concurrency}, Kafka {topics.bootstrap} (acks=all, idempotent)"
    )
    try:
        for batch in (int(b) for b in args.batches.split(",")):
            out = context.Queue()
            cpu0 = _cpu_seconds(ingest.proc.pid)
            proc = context.Process(
                target=_client_process,
                args=(ingest.url, batch, args.events // batch, args.seconds, args.concurrency, out),
            )
            proc.start()
            result = out.get()
            proc.join()
            cpu = _cpu_seconds(ingest.proc.pid) - cpu0
            rate = result["accepted"] / result["seconds"]
            print(
                f"batch {batch:>3}: {result['accepted']:>8,} events in {result['seconds']:5.1f} s"
                f" = {rate:>8,.0f} events/s ({rate / args.workers:,.0f} per worker);"
                f" {result['accepted'] / max(cpu, 1e-9):>8,.0f} events per service CPU-second;"
                f" p50 {result['p50'] * 1000:.1f} ms, p99 {result['p99'] * 1000:.1f} ms;"
                f" errors {result['errors']}"
            )
    finally:
        ingest.stop()
        delete_topics(topics)
    return 0


if __name__ == "__main__":
    sys.exit(main())
