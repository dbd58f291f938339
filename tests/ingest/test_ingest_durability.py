"""A 2xx answer means durable: `kill -9` of the service under load, and Kafka
stopped and restarted under load (a private broker), lose nothing that was
answered 2xx and double nothing; the spool replays in order; events of one
device stay in order on their partition."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import orjson
import pytest
import requests
from ingest_helpers import (
    BROWSER_UA,
    NEWS_KEY,
    ORIGIN,
    RESIDENTIAL_HN,
    create_topics,
    read_topic,
)
from private_kafka import PrivateKafka

pytestmark = pytest.mark.kafka


class Load:
    """Threads posting batches of 20 events; remembers the ids answered 200.
    Each device's events carry a rising `seq`, to check order in Kafka."""

    def __init__(self, url: str, tag: str, threads: int = 4, batch: int = 20) -> None:
        self.url, self.tag, self.batch = url, tag, batch
        self.answered: set[str] = set()
        self.statuses: Counter[int | str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(t,)) for t in range(threads)]

    def _run(self, thread: int) -> None:
        session = requests.Session()
        headers = {
            "Origin": ORIGIN,
            "Content-Type": "text/plain",
            "User-Agent": BROWSER_UA,
            "X-Forwarded-For": RESIDENTIAL_HN,
        }
        n = 0
        while not self._stop.is_set():
            ids = []
            events = []
            for _ in range(self.batch):
                n += 1
                ids.append(f"{self.tag}-{thread}-{n}")
                events.append(
                    {
                        "event_id": ids[-1],
                        "type": "page_view",
                        "seq": n,
                        "device_id": f"{self.tag}-dev{thread}",
                        "ts": int(time.time() * 1000),
                        "url": "https://news1.vn/a",
                    }
                )
            body = orjson.dumps({"site_id": "news1.vn", "key": NEWS_KEY, "events": events})
            try:
                answer = session.post(
                    f"{self.url}/v1/events", data=body, headers=headers, timeout=10
                )
                status: int | str = answer.status_code
            except requests.RequestException:
                status = "no answer"
                time.sleep(0.05)
            with self._lock:
                self.statuses[status] += 1
                if status == 200:
                    self.answered.update(ids)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def _check_exactly_once_in_order(records, answered: set[str]) -> None:
    copies = Counter(value["event_id"] for _, value, _ in records)
    assert answered, "the load got no 2xx at all"
    missing = answered - set(copies)
    assert not missing, f"{len(missing)} events answered 2xx are not in Kafka"
    doubled = {k: c for k, c in copies.items() if c > 1}
    assert not doubled, f"{len(doubled)} events are in Kafka more than once"
    per_device: dict[str, list[tuple[int, int]]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    for _, value, partition in records:
        per_device[value["device_id"]].append(value["seq"])
        partitions[value["device_id"]].add(partition)
    for device, seqs in per_device.items():
        assert len(partitions[device]) == 1, f"{device} spread over partitions"
        assert seqs == sorted(seqs), f"{device}: events out of order in Kafka"


def test_kill_9_under_load_loses_nothing_answered(make_ingest):
    ingest = make_ingest(server={"workers": 2})
    with Load(ingest.url, "k9") as load:
        time.sleep(2.0)
        ingest.kill9()
        time.sleep(0.5)
        ingest.start(wait=True)
        time.sleep(1.5)
    assert load.statuses[200] > 20
    ingest.stop()
    _check_exactly_once_in_order(ingest.events(), load.answered)


def test_kafka_stopped_and_restarted_under_load(tmp_path: Path, make_ingest):
    """Kafka goes away: answers keep coming (from the spool); the service itself
    is killed with -9 while spooling; Kafka comes back: the spool is replayed in
    order, and every event answered 2xx is in Kafka exactly once."""
    broker = PrivateKafka(tmp_path / "kafka")
    broker.start()
    try:
        topics = create_topics(broker.bootstrap, partitions=3)
        ingest = make_ingest(topics, kafka={"ack_timeout_ms": 500})
        with Load(ingest.url, "kd") as load:
            time.sleep(1.5)
            before = load.statuses[200]
            broker.stop()
            time.sleep(3.0)
            health = requests.get(f"{ingest.url}/healthz", timeout=10).json()
            assert health["spooling"] is True and health["spool_bytes"] > 0
            spooled_answers = load.statuses[200]
            assert spooled_answers > before + 5, "no 2xx while Kafka was down"
            ingest.kill9()  # with a spool full of unsent batches
            ingest.start(wait=True)
            time.sleep(1.0)
            broker.start()
            deadline = time.monotonic() + 60
            while requests.get(f"{ingest.url}/healthz", timeout=10).json()["spooling"]:
                assert time.monotonic() < deadline, "the spool did not drain in 60 s"
                time.sleep(0.2)
            time.sleep(1.0)
        assert load.statuses[503] == 0
        assert ingest.stop() == 0
        spools = list((ingest.folder / "spool").glob("worker-*/*.wal"))
        assert all(p.stat().st_size == 0 for p in spools)
        _check_exactly_once_in_order(read_topic(broker.bootstrap, topics.events), load.answered)
    finally:
        broker.kill()


def test_spool_full_answers_503(tmp_path: Path, make_ingest, topics):
    """Kafka unreachable and the spool at its size: 503 with Retry-After, never a drop."""
    from ingest_helpers import free_port

    dead = type(topics)(f"127.0.0.1:{free_port()}", topics.events, topics.rejected)
    ingest = make_ingest(
        dead, kafka={"ack_timeout_ms": 300}, spool={"max_bytes": 40_000, "segment_bytes": 20_000}
    )
    statuses = []
    for n in range(40):
        events = [
            {
                "event_id": f"f{n}-{i}",
                "type": "page_view",
                "device_id": "d",
                "ts": int(time.time() * 1000),
                "url": "https://news1.vn/a",
            }
            for i in range(20)
        ]
        answer = requests.post(
            f"{ingest.url}/v1/events",
            data=orjson.dumps({"site_id": "news1.vn", "key": NEWS_KEY, "events": events}),
            headers={"Origin": ORIGIN, "X-Forwarded-For": RESIDENTIAL_HN},
            timeout=10,
        )
        statuses.append(answer.status_code)
        if answer.status_code == 503:
            assert answer.json()["error"] == "spool_full"
            assert answer.headers["Retry-After"] == "1"
    assert statuses[0] == 200 and 503 in statuses
    assert set(statuses) == {200, 503}
