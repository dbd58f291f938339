"""A 2xx answer means durable: `kill -9` of the service under load (direct
sends, spooling, replay), and Kafka stopped and restarted under load (a private
broker, shared by this module's tests), lose nothing that was answered 2xx;
the only copies are the replay's in-flight window after a crash during replay;
the spool replays in order; events of one device stay in order on their
partition; a stopped broker is reported down and requests skip the wait."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import requests
from ingest_helpers import (
    BROWSER_UA,
    NEWS_KEY,
    ORIGIN,
    RESIDENTIAL_HN,
    browser_post,
    create_topics,
    page_view,
    read_topic,
)
from private_kafka import PrivateKafka

_IDLE = {"status": "ok", "kafka": "up", "spooling": False, "spool_bytes": 0}
pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def private_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateKafka]:
    """One private broker for the module (a JVM start costs seconds)."""
    broker = PrivateKafka(tmp_path_factory.mktemp("kafka"))
    broker.start()
    yield broker
    broker.kill()


@pytest.fixture
def broker(private_broker: PrivateKafka) -> PrivateKafka:
    """The private broker, running at the start of the test."""
    if private_broker.proc is None:
        private_broker.start()
    return private_broker


class Load:
    """Threads posting batches of 20 events; remembers the ids answered 200.
    Each device's events carry a rising `seq`, to check order in Kafka."""

    def __init__(self, url: str, tag: str, threads: int = 4, batch: int = 20) -> None:
        self.url, self.tag, self.batch, self.threads = url, tag, batch, threads
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


def _check_delivery(records, answered: set[str], copies_allowed: int = 0) -> int:
    """Every event answered 2xx is in Kafka, on one partition per device and in
    order (each event's first copy); returns the number of extra copies, which
    must be at most `copies_allowed`."""
    copies = Counter(value["event_id"] for _, value, _ in records)
    assert answered, "the load got no 2xx at all"
    missing = answered - set(copies)
    assert not missing, f"{len(missing)} events answered 2xx are not in Kafka"
    extra = sum(copies.values()) - len(copies)
    assert extra <= copies_allowed, f"{extra} extra copies in Kafka (at most {copies_allowed})"
    per_device: dict[str, list[int]] = defaultdict(list)
    partitions: dict[str, set[int]] = defaultdict(set)
    seen: set[str] = set()
    for _, value, partition in records:
        partitions[value["device_id"]].add(partition)
        if value["event_id"] not in seen:
            seen.add(value["event_id"])
            per_device[value["device_id"]].append(value["seq"])
    for device, seqs in per_device.items():
        assert len(partitions[device]) == 1, f"{device} spread over partitions"
        assert seqs == sorted(seqs), f"{device}: events out of order in Kafka"
    return extra


def _health(ingest) -> dict:
    return requests.get(f"{ingest.url}/healthz", timeout=10).json()


def _wait_health(ingest, check, timeout_s: float, what: str) -> float:
    """Seconds until /healthz passes `check`; fails after `timeout_s`."""
    started = time.monotonic()
    while not check(_health(ingest)):
        assert time.monotonic() - started < timeout_s, f"{what}: not within {timeout_s} s"
        time.sleep(0.01)
    return time.monotonic() - started


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
    _check_delivery(ingest.events(), load.answered)


def test_kafka_stopped_and_restarted_under_load(broker: PrivateKafka, make_ingest):
    """Kafka goes away: answers keep coming (from the spool); the service itself
    is killed with -9 while spooling; Kafka comes back: the spool is replayed in
    order, and every event answered 2xx is in Kafka exactly once."""
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
    # collectors/ingest/durable.py: the only copies allowed are the direct requests
    # in flight when Kafka went away (written, their acknowledgement lost, then
    # spooled): at most one batch per load thread. Seen: 20 in 1 run of 4.
    in_flight = load.threads * load.batch
    _check_delivery(read_topic(broker.bootstrap, topics.events), load.answered, in_flight)


def test_a_stopped_broker_is_reported_down_and_requests_skip_the_wait(
    broker: PrivateKafka, make_ingest
):
    """Within a second or so of the broker stopping, /healthz says Kafka is down
    and a request is spooled at once instead of waiting its ack_timeout (20 s
    here); when the broker is back, the spool drains and /healthz says up."""
    topics = create_topics(broker.bootstrap, partitions=3)
    ingest = make_ingest(topics, kafka={"ack_timeout_ms": 20_000})
    assert _health(ingest)["kafka"] == "up"
    with Load(ingest.url, "hd", threads=1, batch=1) as load:
        time.sleep(0.5)
        broker.stop()
        down_after = _wait_health(ingest, lambda h: h["kafka"] == "down", 10, "reported down")
        started = time.monotonic()
        answer = browser_post(ingest.url, [page_view("hd-one", seq=1, device_id="hd-one")])
        took = time.monotonic() - started
        assert answer.status_code == 200 and answer.json()["durable"] == "spool"
        broker.start()
        _wait_health(ingest, lambda h: h == _IDLE, 60, "up and drained")
    assert down_after < 5
    assert took < 5, f"a request waited {took:.1f} s while Kafka was known to be down"
    ingest.stop()
    _check_delivery(read_topic(broker.bootstrap, topics.events), load.answered | {"hd-one"})


def test_kill_9_during_replay_resends_at_most_the_window(broker: PrivateKafka, make_ingest):
    """Many batches spooled while the broker is down; the broker comes back and,
    while the spool is being replayed, the service is killed with -9 and
    restarted: every answered event is in Kafka, and the extra copies are at
    most the replay window (the messages handed to the producer, not yet marked
    done)."""
    window = 1000
    topics = create_topics(broker.bootstrap, partitions=3)
    broker.stop()
    ingest = make_ingest(
        topics,
        kafka={"ack_timeout_ms": 20_000},
        spool={"segment_bytes": 1 << 18, "replay_window": window},
    )
    _wait_health(ingest, lambda h: h["kafka"] == "down", 10, "reported down")
    with Load(ingest.url, "rw", threads=8, batch=100) as load:
        time.sleep(6.0)
    spooled = _health(ingest)["spool_bytes"]
    assert load.statuses[200] > 150 and set(load.statuses) == {200}, load.statuses
    starting = threading.Thread(target=broker.start)
    starting.start()
    _wait_health(ingest, lambda h: h["spool_bytes"] < spooled, 90, "replay started")
    ingest.kill9()
    starting.join()
    ingest.start(wait=True)
    _wait_health(ingest, lambda h: h == _IDLE, 60, "drained after the restart")
    ingest.stop()
    recovered = re.search(r"spool: (\d+) batches to send again", ingest.log())
    assert recovered and 0 < int(recovered[1]) < load.statuses[200], ingest.log()
    extra = _check_delivery(read_topic(broker.bootstrap, topics.events), load.answered, window)
    assert len(load.answered) == 100 * load.statuses[200]
    print(f"{len(load.answered)} answered, {recovered[1]} batches recovered, {extra} copies")


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
