"""Freshness of the live figures: an event received by ingest → visible in ClickHouse.

Starts, on this machine and against the local stack, `pressmeter ingest serve`
and `pressmeter pipeline live` (Prism) on a private topic and database, then for
`--seconds` sends page views to ingest at `--rate` events/s (browser batches of
20, 5,000 devices) and, twice a second, a probe: one media event with a channel
of its own. A probe is visible when its channel's row is in
`live_channel_minutes`; its latency runs from the moment the probe was sent to
ingest to the moment a reader first saw that row (the table is read every
0.1 s, as a dashboard would, so the figure includes up to 0.1 s of polling).
Prints p50/p95/p99 over the probes and their curve over the run (a backlog shows
as a rise), probes never seen, the page views counted
live against those sent, and the CPU the live job (with its Prism runner) and
ingest used, in cores. Bounded in count and time; everything is deleted after.

    eval "$(deploy/local/stack env)"
    .venv/bin/python bench/live_freshness.py --seconds 60 --rate 1000
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests/ingest"))

from ingest_helpers import (  # noqa: E402
    BROWSER_UA,
    NEWS_KEY,
    ORIGIN,
    Ingest,
    browser_post,
    create_topics,
    delete_topics,
    free_port,
    kafka_bootstrap,
    write_config,
)
from ingest_load import _cpu_seconds  # noqa: E402

from pressmeter.store import open_store  # noqa: E402

BATCH = 20
DEVICES = 5_000


async def _send_views(url: str, rate: float, seconds: float) -> int:
    """Page views at `rate` events/s for `seconds`, paced per batch; returns those accepted."""
    import aiohttp
    import orjson

    headers = {"Origin": ORIGIN, "Content-Type": "text/plain", "User-Agent": BROWSER_UA}
    accepted = 0
    start = time.monotonic()
    interval = BATCH / rate
    sent = 0

    async def post(session: aiohttp.ClientSession, number: int) -> None:
        nonlocal accepted
        now = int(time.time() * 1000)
        events = [
            {
                "event_id": f"v{number}-{i}",
                "type": "page_view",
                "device_id": f"d{(number * BATCH + i) % DEVICES}",
                "ts": now,
                "url": "https://news1.vn/a",
            }
            for i in range(BATCH)
        ]
        body = orjson.dumps({"site_id": "news1.vn", "key": NEWS_KEY, "events": events})
        async with session.post(f"{url}/v1/events", data=body, headers=headers) as answer:
            if answer.status == 200:
                accepted += (await answer.json())["accepted"]

    async with aiohttp.ClientSession() as session:
        tasks = []
        while time.monotonic() - start < seconds:
            tasks.append(asyncio.create_task(post(session, sent)))
            sent += 1
            await asyncio.sleep(max(0.0, start + sent * interval - time.monotonic()))
        await asyncio.gather(*tasks)
    return accepted


def _load_process(url: str, rate: float, seconds: float, out: multiprocessing.Queue) -> None:
    out.put(asyncio.run(_send_views(url, rate, seconds)))


def _probe(url: str, number: int) -> int:
    """Sends probe `number`; returns the ms it was sent at."""
    sent_ms = int(time.time() * 1000)
    event = {
        "event_id": f"probe{number}",
        "type": "media",
        "device_id": f"probe-device-{number}",
        "ts": sent_ms,
        "media_id": "probe",
        "action": "heartbeat",
        "played_ms": 1_000,
        "play_id": f"probe-play-{number}",
        "channel_id": f"probe-{number}",
    }
    answer = browser_post(url, [event])
    assert answer.status_code == 200 and answer.json()["accepted"] == 1, answer.text
    return sent_ms


def _visible(store_url: str) -> set[str]:
    """The probe channels a reader of the live table sees now."""
    rows = open_store(store_url, migrate=False).rows(
        "SELECT DISTINCT channel_id FROM live_channel_minutes WHERE channel_id LIKE 'probe-%'"
    )
    return {channel for (channel,) in rows}


def _watch(store_url: str, first_seen: dict[str, int], until: float) -> None:
    """Reads the live table every 0.1 s until `until` (monotonic), noting when each
    probe was first seen (ms). Seen by a reader, not by the rows' `written_ms`:
    ReplacingMergeTree's merges keep a minute's last write, not its first."""
    while time.monotonic() < until:
        now_ms = int(time.time() * 1000)
        for probe in _visible(store_url) - first_seen.keys():
            first_seen[probe] = now_ms
        time.sleep(max(0.0, min(0.1, until - time.monotonic())))


def _counted(store_url: str) -> int:
    return open_store(store_url, migrate=False).rows(
        "SELECT sum(page_views) FROM live_site_minutes FINAL WHERE site_id = 'news1.vn'"
    )[0][0]


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def _by_slice(sent: dict[str, int], seen: dict[str, int], began_ms: float) -> str:
    """The latencies' curve over the run: a backlog shows as a rise, a slow step as a level."""
    slices: dict[int, list[float]] = {}
    for probe, sent_ms in sent.items():
        if probe in seen:
            slices.setdefault(int((sent_ms - began_ms) // 10_000), []).append(
                (seen[probe] - sent_ms) / 1000
            )
    return ", ".join(
        f"{10 * n}s {_percentile(v, 0.5):.1f}/{max(v):.1f}" for n, v in sorted(slices.items())
    )


def _live_job(bootstrap: str, topic: str, store_url: str, folder: Path) -> subprocess.Popen:
    log = (folder / "live.log").open("wb")
    command = [str(REPO / ".venv/bin/pressmeter"), "pipeline", "live", "--kafka", bootstrap]
    command += ["--topic", topic, "--group", f"bench-{uuid.uuid4().hex[:8]}"]
    command += ["--store", store_url, "--from-beginning"]
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def _wait_probe(store_url: str, url: str, number: int, timeout: float) -> None:
    """The first probe: the job is up once it shows."""
    _probe(url, number)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if f"probe-{number}" in _visible(store_url):
                return
        except Exception:  # the live tables appear once the job has migrated the store
            pass
        time.sleep(0.2)
    raise SystemExit(f"the live job showed nothing in {timeout} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="load duration (≤ 600)")
    parser.add_argument("--rate", type=float, default=1000.0, help="page views per second")
    parser.add_argument("--probes-per-s", type=float, default=2.0)
    args = parser.parse_args()
    args.seconds = min(args.seconds, 600.0)

    bootstrap = kafka_bootstrap()
    server = os.environ.get("PM_CLICKHOUSE", "clickhouse://127.0.0.1:19000/default")
    store_url = f"{server.rsplit('/', 1)[0]}/pm_live_bench_{uuid.uuid4().hex[:8]}"
    topics = create_topics(bootstrap, partitions=6)
    folder = Path(tempfile.mkdtemp(prefix="pm-live-bench-"))
    port = free_port()
    limits = {"outlet_events_per_s": 1e9, "outlet_burst": 1e9}
    ingest = Ingest(write_config(folder, port, topics, limits=limits), port, folder, topics)
    ingest.start()
    live = _live_job(bootstrap, topics.events, store_url, folder)
    print(
        f"live freshness bench: {args.rate:,.0f} page views/s for {args.seconds:.0f} s, "
        f"{args.probes_per_s:g} probes/s; {os.cpu_count()} cores (shared with other work); "
        f"logs in {folder}"
    )
    try:
        _wait_probe(store_url, ingest.url, 0, timeout=120)
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        load = context.Process(
            target=_load_process, args=(ingest.url, args.rate, args.seconds, out)
        )
        cpu_live, cpu_ingest = _cpu_seconds(live.pid), _cpu_seconds(ingest.proc.pid)
        began, began_ms = time.monotonic(), time.time() * 1000
        load.start()
        sent: dict[str, int] = {}
        number = 1
        first_seen: dict[str, int] = {}
        while time.monotonic() - began < args.seconds:
            sent[f"probe-{number}"] = _probe(ingest.url, number)
            number += 1
            _watch(store_url, first_seen, until=time.monotonic() + 1 / args.probes_per_s)
        accepted = out.get()
        load.join()
        wall = time.monotonic() - began
        cpu_live = _cpu_seconds(live.pid) - cpu_live
        cpu_ingest = _cpu_seconds(ingest.proc.pid) - cpu_ingest
        deadline = time.monotonic() + 20
        while len(set(sent) - set(first_seen)) and time.monotonic() < deadline:
            _watch(store_url, first_seen, until=time.monotonic() + 0.5)
        seen = first_seen
        latencies = [(seen[p] - sent[p]) / 1000 for p in sent if p in seen]
        counted = _counted(store_url)
        while counted < accepted and time.monotonic() < deadline:
            time.sleep(0.5)
            counted = _counted(store_url)
        print(
            f"probes: {len(latencies)} seen of {len(sent)}; latency p50 "
            f"{_percentile(latencies, 0.50):.2f} s, p95 {_percentile(latencies, 0.95):.2f} s, "
            f"p99 {_percentile(latencies, 0.99):.2f} s, max {max(latencies):.2f} s, "
            f"mean {statistics.mean(latencies):.2f} s"
        )
        print("latency by 10 s of the run (p50 / max):", _by_slice(sent, seen, began_ms))
        print(
            f"load: {accepted:,} page views accepted by ingest in {wall:.1f} s "
            f"({accepted / wall:,.0f}/s); counted live {counted:,}"
        )
        print(
            f"CPU: live job + Prism {cpu_live / wall:.2f} cores "
            f"({cpu_live:.1f} s over {wall:.1f} s), ingest {cpu_ingest / wall:.2f} cores"
        )
    finally:
        live.send_signal(signal.SIGTERM)
        live.wait(timeout=60)
        ingest.stop()
        delete_topics(topics)
        name = store_url.rsplit("/", 1)[1]
        open_store(store_url, migrate=False).execute(f"DROP DATABASE IF EXISTS {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
