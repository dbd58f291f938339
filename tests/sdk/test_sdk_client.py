"""The Python SDK against the real ingest service on loopback: what lands in
Kafka, signing, batching, retries (503, 429, a dropped connection), a full
queue, and many threads sending (each event exactly once in Kafka)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from ingest_service import TV_SECRET, Ingest, relay

from pressmeter.collectors.ingest.auth import sign as ingest_sign
from pressmeter.collectors.sdk import (
    Client,
    ClientClosed,
    InvalidEvent,
    MediaSession,
    QueueFull,
    engagement,
    page_view,
    sign,
)

STB_UA = "Mozilla/5.0 (Linux; Tizen 6.0) SmartTV Safari/537.36"
RESIDENTIAL_HN = "14.160.1.2"  # VN-HN in tests/ingest/data/provinces.csv


def landed(ingest: Ingest, ids: set[str]) -> list[dict[str, Any]]:
    """The events of `ids` found in the service's Kafka topic (every copy)."""
    return [value for _, value, _ in ingest.events() if value.get("event_id") in ids]


def wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def views(n: int, tag: str) -> list[dict[str, Any]]:
    return [
        page_view(f"https://tv1.vn/{tag}/{i}", device_id=f"{tag}-dev", ua=STB_UA) for i in range(n)
    ]


def test_signature_is_the_one_ingest_verifies() -> None:
    body = b'{"events":[]}'
    assert sign(TV_SECRET, "POST", "/v1/events?n=ab", "1700000000", body) == ingest_sign(
        TV_SECRET, "POST", "/v1/events?n=ab", "1700000000", body
    )


def test_page_and_media_events_land_in_kafka(sdk_ingest: Ingest) -> None:
    play = MediaSession(
        "stb-7", "vtv1-live", ua=STB_UA, ip=RESIDENTIAL_HN, media_kind="video", stream="live"
    )
    sent = [
        page_view("https://tv1.vn/news/1", device_id="stb-7", ua=STB_UA, ip=RESIDENTIAL_HN),
        engagement("https://tv1.vn/news/1", 15_000, device_id="stb-7", ua=STB_UA),
        play.start(),
        play.heartbeat(played_ms=30_000),
        play.pause(played_ms=12_000),
        play.end(played_ms=0),
    ]
    with Client(sdk_ingest.url, "tv1.vn", TV_SECRET) as client:
        for event in sent:
            client.send(event)
    assert client.stats.accepted == 6 and client.stats.failed == 0
    got = {e["event_id"]: e for e in landed(sdk_ingest, {e["event_id"] for e in sent})}
    assert len(got) == 6
    for event in sent:
        stored = got[event["event_id"]]
        assert stored["site_id"] == "tv1.vn"
        assert stored["ua"] == STB_UA
        assert "ip" not in stored  # used for enrichment, then dropped
        assert isinstance(stored["received_at"], int)
        for name in ("type", "ts", "device_id", "url", "played_ms", "action", "play_id"):
            assert stored.get(name) == event.get(name)
    first = got[sent[0]["event_id"]]
    assert first["ip_class"] == "residential" and first["province"] == "VN-HN"
    assert first["device_type"] == "tv"
    media = [got[e["event_id"]] for e in sent[2:]]
    assert [e["action"] for e in media] == ["start", "heartbeat", "pause", "end"]
    assert sum(e["played_ms"] for e in media) == 42_000


def test_a_wrong_secret_is_refused_once_and_reported(sdk_ingest: Ingest) -> None:
    failures: list[tuple[int, str]] = []
    events = views(3, f"bad-{uuid.uuid4().hex[:6]}")
    client = Client(
        sdk_ingest.url,
        "tv1.vn",
        b"not-the-secret",
        on_failure=lambda evs, why: failures.append((len(evs), why)),
    )
    for event in events:
        client.send(event)
    assert client.close()
    stats = client.stats
    assert (stats.failed, stats.accepted, stats.requests, stats.retries) == (3, 0, 1, 0)
    assert failures and failures[0][0] == 3 and "401" in failures[0][1]
    assert "bad_signature" in failures[0][1]
    assert landed(sdk_ingest, {e["event_id"] for e in events}) == []


def test_batches_by_size_then_by_time(sdk_ingest: Ingest) -> None:
    with relay(sdk_ingest.port) as seen:
        client = Client(seen.url, "tv1.vn", TV_SECRET, batch_size=10, flush_interval_s=60)
        events = views(35, "size")
        for event in events:
            client.send(event)
        wait_until(lambda: len(seen.seen) == 3 and client.stats.queued == 5)
        time.sleep(0.3)
        assert [s.events for s in seen.seen] == [10, 10, 10]  # the 5 left wait for more
        assert client.flush(10)
        assert [s.events for s in seen.seen] == [10, 10, 10, 5]
        client.close()

        timed = Client(seen.url, "tv1.vn", TV_SECRET, batch_size=100, flush_interval_s=0.3)
        later = views(3, "time")
        started = time.monotonic()
        for event in later:
            timed.send(event)
        wait_until(lambda: timed.stats.accepted == 3)  # no flush(): the interval sends them
        assert 0.25 <= time.monotonic() - started < 5
        assert seen.seen[-1].events == 3
        timed.close()
    assert len(landed(sdk_ingest, {e["event_id"] for e in events + later})) == 38


def test_retries_after_503_429_and_a_dropped_connection(sdk_ingest: Ingest) -> None:
    plan = {0: 503, 1: 429, 2: "drop"}
    with relay(sdk_ingest.port, plan=plan.get, retry_after="1") as seen:
        client = Client(
            seen.url, "tv1.vn", TV_SECRET, backoff_initial_s=0.01, backoff_max_s=5, batch_size=5
        )
        events = views(5, "retry")
        started = time.monotonic()
        for event in events:
            client.send(event)
        assert client.flush(30)
        elapsed = time.monotonic() - started
        client.close()
    # the two refusals said Retry-After: 1, the backoff alone would wait ~0.03 s
    assert elapsed >= 2.0
    assert [s.answered for s in seen.seen] == [503, 429, 0, 200]
    stats = client.stats
    assert (stats.requests, stats.retries, stats.accepted, stats.failed) == (4, 3, 5, 0)
    # every attempt is signed anew (ingest accepts a signature once)
    assert len({s.signature for s in seen.seen}) == 4 and len({s.path for s in seen.seen}) == 4
    assert sorted(e["event_id"] for e in landed(sdk_ingest, {e["event_id"] for e in events})) == (
        sorted(e["event_id"] for e in events)
    )


def test_gives_up_after_max_attempts_and_reports(sdk_ingest: Ingest) -> None:
    failed: list[str] = []
    with relay(sdk_ingest.port, plan=lambda n: 503, retry_after=None) as seen:
        client = Client(
            seen.url,
            "tv1.vn",
            TV_SECRET,
            max_attempts=3,
            backoff_initial_s=0.01,
            on_failure=lambda evs, why: failed.append(why),
        )
        client.send(views(1, "giveup")[0])
        assert client.close(10)
    assert len(seen.seen) == 3
    assert client.stats.failed == 1 and client.stats.retries == 2
    assert failed and failed[0].startswith("gave up after 3 attempts: HTTP 503")


def test_a_full_queue_refuses_new_events_with_an_exception(sdk_ingest: Ingest) -> None:
    with relay(sdk_ingest.port, open_gate=False) as stalled:
        client = Client(
            stalled.url, "tv1.vn", TV_SECRET, batch_size=1, flush_interval_s=0, max_queue=5
        )
        events = views(7, "full")
        client.send(events[0])
        wait_until(lambda: client.stats.queued == 0)  # in flight, stuck at the relay
        for event in events[1:6]:
            client.send(event)
        with pytest.raises(QueueFull, match="max_queue 5"):
            client.send(events[6])
        assert client.stats.refused_queue_full == 1 and client.stats.queued == 5

        waiting = Client(
            stalled.url, "tv1.vn", TV_SECRET, batch_size=1, max_queue=1, block_timeout_s=0.3
        )
        more = views(3, "wait")
        waiting.send(more[0])
        wait_until(lambda: waiting.stats.queued == 0)  # in flight, stuck too
        waiting.send(more[1])
        started = time.monotonic()
        with pytest.raises(QueueFull):
            waiting.send(more[2])
        assert time.monotonic() - started >= 0.3  # it waited block_timeout_s for room

        stalled.gate.set()
        assert client.flush(20) and waiting.close(20)
        client.close()
    assert client.stats.accepted == 6 and waiting.stats.accepted == 2
    got = landed(sdk_ingest, {e["event_id"] for e in events})
    assert sorted(e["event_id"] for e in got) == sorted(e["event_id"] for e in events[:6])


def test_many_threads_each_event_exactly_once(sdk_ingest: Ingest) -> None:
    threads, per_thread = 8, 250
    client = Client(sdk_ingest.url, "tv1.vn", TV_SECRET, batch_size=50, flush_interval_s=0.05)
    ids: list[str] = []
    lock = threading.Lock()
    go = threading.Barrier(threads)

    def work(n: int) -> None:
        mine = views(per_thread, f"thread{n}")
        go.wait()
        for i, event in enumerate(mine):
            client.send(event)
            if i == per_thread // 2:
                client.flush(30)  # flushes from several threads at once, too
        with lock:
            ids.extend(e["event_id"] for e in mine)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert client.close(60)
    assert client.stats.accepted == threads * per_thread and client.stats.failed == 0
    got = [e["event_id"] for e in landed(sdk_ingest, set(ids))]
    assert len(got) == threads * per_thread
    assert sorted(got) == sorted(ids)


def test_ingest_rejections_are_counted_and_reported(sdk_ingest: Ingest) -> None:
    reported: list[str] = []
    client = Client(
        sdk_ingest.url, "tv1.vn", TV_SECRET, on_failure=lambda evs, why: reported.append(why)
    )
    stale = page_view("https://tv1.vn/old", device_id="old", ua=STB_UA, ts=1_000_000_000_000)
    fine = page_view("https://tv1.vn/new", device_id="new", ua=STB_UA)
    client.send(stale)
    client.send(fine)
    client.close()
    assert (client.stats.accepted, client.stats.rejected) == (1, 1)
    assert reported and reported[0].startswith("rejected: ")
    assert [e["event_id"] for e in landed(sdk_ingest, {stale["event_id"], fine["event_id"]})] == [
        fine["event_id"]
    ]


def test_closed_client_and_invalid_events_are_refused(sdk_ingest: Ingest) -> None:
    client = Client(sdk_ingest.url, "tv1.vn", TV_SECRET)
    with pytest.raises(InvalidEvent):
        client.send({"type": "page_view"})
    with pytest.raises(InvalidEvent):
        client.send({**page_view("https://tv1.vn/"), "ts": 1.5})
    client.close()
    with pytest.raises(ClientClosed):
        client.send(page_view("https://tv1.vn/"))
