"""Batch runs reading a bounded slice of a real Kafka topic (the local Kafka 4 broker).

Every test makes its own 3-partition topic and consumer group. What is checked:
the run's summary, the export it produces, the group's committed offsets, and
docs/standard.md §2: reading the same copy again (a replayed offset, a restart after a
crash) changes nothing; a run that fails leaves nothing visible and skips nothing.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import time
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import confluent_kafka
import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from support import (
    ZONE,
    cli,
    empty_store,
    event,
    fresh_store,
    kafka_bootstrap,
    local_ms,
    one_error_line,
)

from pressmeter.calendar import LocalCalendar, day_to_date
from pressmeter.errors import InputError
from pressmeter.metrics import EXPORT_COLUMNS, metric_rows, write_csv
from pressmeter.pipelines import facts, kafka_slices
from pressmeter.pipelines.batch import BatchRequest, RunSummary, run_batch
from pressmeter.pipelines.sources import KafkaSlice
from pressmeter.rejects import reject_counts
from pressmeter.store import close_stores, open_store, quote

pytestmark = pytest.mark.kafka

PARTITIONS = 3
DAY1, DAY2 = "2026-10-05", "2026-10-06"


# ------------------------------------------------------------------ the events

Record = dict[str, Any] | tuple[str, str | bytes]  # an event, or (key, raw value) for malformed


def _first_records() -> list[Record]:
    """N = 14 records: 12 valid events (one of them sent twice), 2 malformed values."""
    c_view = event(at=f"{DAY1} 11:00", device="dev-c")
    no_device = event(at=f"{DAY1} 11:30", device="dev-x")
    del no_device["device_id"]
    return [
        event(at=f"{DAY1} 08:00", device="dev-a"),
        event(at=f"{DAY1} 08:10", device="dev-a"),
        event(at=f"{DAY1} 09:00", device="dev-a"),  # 50 min later: a second visit
        event(at=f"{DAY1} 10:00", device="dev-b"),
        event("engagement", at=f"{DAY1} 10:01", device="dev-b", engaged_ms=5_000),
        c_view,
        dict(c_view),  # the same copy sent twice: 1 duplicate
        event(at=f"{DAY1} 12:00", device="dev-bot", ua="Googlebot/2.1"),  # IVT
        event("media", at=f"{DAY1} 20:00", device="dev-g", site="tv1.vn",
              action="start", played_ms=0),
        event("media", at=f"{DAY1} 20:00:30", device="dev-g", site="tv1.vn"),
        event("media", at=f"{DAY1} 20:01", device="dev-g", site="tv1.vn", action="end"),
        event(at=f"{DAY1} 21:00", device="dev-h", site="tv1.vn"),
        ("news1.vn/dev-x", "{not json"),
        ("news1.vn/dev-x", orjson.dumps(no_device).decode()),
    ]  # fmt: skip


def _more_records(first: list[Record]) -> list[Record]:
    """M = 5 records after the first N."""
    c_view = first[5]
    assert isinstance(c_view, dict)
    return [
        event(at=f"{DAY1} 09:20", device="dev-a"),  # joins dev-a's second visit
        event(at=f"{DAY2} 00:10", device="dev-d"),  # a new day
        {**c_view, "received_at": c_view["received_at"] + 1_000},  # a later copy: duplicate
        event(at=f"{DAY1} 21:40", device="dev-h", site="tv1.vn"),  # 40 min later: new visit
        ("news1.vn/dev-x", "[1, 2]"),  # not an object
    ]


FIELDS = tuple(name for name in EXPORT_COLUMNS if name not in ("period", "site_id", "ama"))


def _row(**values: int) -> dict[str, int]:
    return {name: values.get(name, 0) for name in FIELDS}


AFTER_FIRST = {
    (DAY1, "news1.vn"): _row(
        pageviews=5, visits=4, engaged_visits=1, visitors=3, engaged_ms=5_000,
        ivt_events=1, duplicate_events=1,
    ),
    (DAY1, "tv1.vn"): _row(
        pageviews=1, visits=2, engaged_visits=1, visitors=2, media_starts=1,
        media_completes=1, play_ms=60_000, media_reach=1,
    ),
}  # fmt: skip
AFTER_ALL = {
    (DAY1, "news1.vn"): _row(
        pageviews=6, visits=4, engaged_visits=2, visitors=3, engaged_ms=5_000,
        ivt_events=1, duplicate_events=2,
    ),
    (DAY2, "news1.vn"): _row(pageviews=1, visits=1, visitors=1),
    (DAY1, "tv1.vn"): _row(
        pageviews=2, visits=3, engaged_visits=1, visitors=2, media_starts=1,
        media_completes=1, play_ms=60_000, media_reach=1,
    ),
}  # fmt: skip


# ------------------------------------------------------------------ helpers


def _fresh_topic() -> Iterator[str]:
    """A fresh 3-partition topic (the broker does not create topics itself)."""
    name = f"pmtest.{uuid.uuid4().hex[:12]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap(), client_id="pmtest-admin")
    try:
        admin.create_topics([NewTopic(name, PARTITIONS, 1)])
        yield name
    finally:
        with contextlib.suppress(Exception):
            admin.delete_topics([name])
        admin.close()


topic = pytest.fixture(_fresh_topic)
dead_letter_topic = pytest.fixture(_fresh_topic)


@pytest.fixture
def group() -> str:
    return f"pmtest-{uuid.uuid4().hex[:12]}"


def _key_value(record: Record) -> tuple[bytes, bytes]:
    if isinstance(record, tuple):
        raw = record[1]
        return record[0].encode(), raw if isinstance(raw, bytes) else raw.encode()
    return f"{record['site_id']}/{record['device_id']}".encode(), orjson.dumps(record)


def produce(
    topic: str, records: list[Record], partition: int | None = None, **config: Any
) -> dict[int, list[bytes]]:
    """Send keyed by site_id/device_id (so a device stays on one partition), with
    librdkafka as the ingest service does, `config` added (compression.type,
    transactional.id: then all in one transaction). Returns the values each
    partition got, in offset order."""
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": kafka_bootstrap(),
            "acks": "all",
            "enable.idempotence": True,  # offset order is send order
            "linger.ms": 5,
            "partitioner": "murmur2_random",  # the Java client's (and kafka-python's)
            **config,
        }
    )
    delivered: list[tuple[int, int, bytes]] = []

    def report(err: confluent_kafka.KafkaError | None, msg: confluent_kafka.Message) -> None:
        assert err is None, err
        delivered.append((msg.partition(), msg.offset(), msg.value()))

    transactional = "transactional.id" in config
    if transactional:
        producer.init_transactions(30)
        producer.begin_transaction()
    for record in records:
        key, value = _key_value(record)
        where = {} if partition is None else {"partition": partition}
        producer.produce(topic, value, key, on_delivery=report, **where)
    if transactional:
        producer.commit_transaction(30)
    assert producer.flush(30) == 0
    by_partition: dict[int, list[bytes]] = {}
    for part, _, value in sorted(delivered):
        by_partition.setdefault(part, []).append(value)
    return by_partition


def offsets(topic: str, group: str) -> tuple[dict[int, int], dict[int, int | None]]:
    """(end offset, the group's committed offset) per partition, as Kafka says."""
    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap(), group_id=group, enable_auto_commit=False
    )
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        end = consumer.end_offsets(parts)
        return (
            {tp.partition: end[tp] for tp in parts},
            {tp.partition: consumer.committed(tp) for tp in parts},
        )
    finally:
        consumer.close()


NOTHING_COMMITTED = dict.fromkeys(range(PARTITIONS))


def run(store_url: str, topic: str, group: str, dead_letters: str = "") -> RunSummary:
    """A run of `topic` and of the dead-letter topic `dead_letters` (none if "")."""
    close_stores()  # chDB: one store per process at a time
    summary = run_batch(
        BatchRequest(
            store_url,
            ZONE,
            kafka=kafka_bootstrap(),
            topic=topic,
            rejected_topic=dead_letters,
            group=group,
        )
    )
    assert_counts_add_up(summary)
    return summary


def assert_counts_add_up(s: RunSummary) -> None:
    assert s.read == sum(s.rejected.values()) + s.duplicates + s.replayed + s.kept, s.render()


def export_csv(store_url: str) -> str:
    close_stores()
    out = io.StringIO()
    write_csv(metric_rows(open_store(store_url), "day"), out)
    return out.getvalue()


def export(store_url: str) -> dict[tuple[str, str], dict[str, int]]:
    """(day, site_id) → the checked columns, read from the export CSV."""
    rows = csv.DictReader(io.StringIO(export_csv(store_url)))
    return {(r["period"], r["site_id"]): {f: int(r[f]) for f in FIELDS} for r in rows}


def assert_export(store_url: str, expected: dict[tuple[str, str], dict[str, int]]) -> None:
    """The export has exactly these rows; a mismatch names (day, site, column): (got, wanted)."""
    got = export(store_url)
    assert sorted(got) == sorted(expected), f"rows {sorted(got)} != {sorted(expected)}"
    wrong = {
        (*key, name): (got[key][name], want)
        for key, row in expected.items()
        for name, want in row.items()
        if got[key][name] != want
    }
    assert not wrong, f"export differs, (day, site, column): (got, wanted): {wrong}"


def query(store_url: str, sql: str) -> list[tuple]:
    close_stores()
    return open_store(store_url).rows(sql)


def clean_export(store_url: str, tmp_path: Path, topic: str) -> str:
    """The export of one run over the whole topic into a fresh store (a new group)."""
    with fresh_store(store_url, tmp_path) as other:
        run(other, topic, f"pmtest-ref-{uuid.uuid4().hex[:8]}")
        return export_csv(other)


def run_status(store_url: str) -> dict[str, str]:
    """run_id → its state (the highest status it reached)."""
    return dict(query(store_url, "SELECT run_id, toString(max(status)) FROM runs GROUP BY run_id"))


# ------------------------------------------------------------------ tests


def test_reads_each_offset_once_and_commits_the_end_offsets(
    store_url: str, topic: str, group: str, tmp_path: Path
) -> None:
    first = _first_records()
    produce(topic, first)
    end, committed = offsets(topic, group)
    assert sum(end.values()) == 14
    assert all(end.values()), f"the keys should spread over the 3 partitions: {end}"
    assert committed == NOTHING_COMMITTED

    s = run(store_url, topic, group)
    assert (s.read, s.rejected, s.duplicates, s.replayed, s.kept) == (
        14,
        {"not_json": 1, "missing_field": 1},
        1,
        0,
        11,
    )
    assert s.ivt["ua"] == 1
    assert_export(store_url, AFTER_FIRST)
    assert offsets(topic, group) == (end, end)

    # Nothing new: reads nothing, changes nothing.
    before = export_csv(store_url)
    s = run(store_url, topic, group)
    assert (s.read, s.kept, s.duplicates, s.replayed, s.rejected) == (0, 0, 0, 0, {})
    assert export_csv(store_url) == before
    assert offsets(topic, group) == (end, end)

    # M more: exactly those are read, nothing skipped, nothing read twice.
    produce(topic, _more_records(first))
    end2, _ = offsets(topic, group)
    assert sum(end2.values()) == 19
    s = run(store_url, topic, group)
    assert (s.read, s.rejected, s.duplicates_within_run, s.duplicates_across_runs) == (
        5,
        {"not_object": 1},
        0,
        1,
    )
    assert (s.replayed, s.kept) == (0, 3)
    assert_export(store_url, AFTER_ALL)
    assert offsets(topic, group) == (end2, end2)

    # The same as one run over all N + M events into a fresh store.
    assert clean_export(store_url, tmp_path, topic) == export_csv(store_url)
    ledger = query(
        store_url,
        "SELECT sum(lines_read), sum(kept), sum(rejected), sum(duplicates) FROM runs "
        "WHERE run_id IN (SELECT run_id FROM committed_runs) AND status = 'committed'",
    )
    assert ledger == [(19, 14, 3, 2)]


def test_another_group_reading_the_same_offsets_changes_nothing(
    store_url: str, topic: str, group: str
) -> None:
    """§2: a replayed offset is the same copy, not a new one (dedup says 'replayed')."""
    produce(topic, _first_records())
    run(store_url, topic, group)
    before = export_csv(store_url)
    s = run(store_url, topic, f"{group}-other")
    assert (s.read, s.kept) == (14, 0)
    assert s.replayed >= 11  # every kept copy is a replay of itself
    assert s.replayed + s.duplicates == 12
    assert_export(store_url, AFTER_FIRST)  # re-reading the same offsets changes nothing
    assert export_csv(store_url) == before


def test_crash_after_the_store_commit_and_before_the_kafka_commit(
    store_url: str, topic: str, group: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    produce(topic, _first_records())
    end, _ = offsets(topic, group)
    real_commit = kafka_slices.commit_offsets
    calls = []

    def crash_once(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        if len(calls) == 1:
            raise ConnectionError("injected: process died before committing to Kafka")
        real_commit(*args, **kwargs)

    # Fault injection into our own code (the broker stays real): the process "dies"
    # right after the store commit, before it tells Kafka.
    offsets_module = kafka_slices
    monkeypatch.setattr(offsets_module, "commit_offsets", crash_once)
    with pytest.raises(ConnectionError, match="injected"):
        run(store_url, topic, group)
    assert len(calls) == 1

    # The store holds the run, committed; Kafka does not know.
    statuses = run_status(store_url)
    assert list(statuses.values()) == ["committed"]
    crashed = next(iter(statuses))
    assert query(
        store_url,
        f"SELECT lines_read, kept FROM runs WHERE run_id = {quote(crashed)} "
        "AND status = 'committed'",
    ) == [(14, 11)]
    assert offsets(topic, group) == (end, NOTHING_COMMITTED)
    assert_export(store_url, AFTER_FIRST)
    before = export_csv(store_url)

    # The restart reads nothing twice ...
    s = run(store_url, topic, group)
    assert (s.read, s.kept, s.duplicates, s.replayed) == (0, 0, 0, 0)
    assert export_csv(store_url) == before
    # ... and brings Kafka's committed offsets up to what the store holds.
    assert offsets(topic, group) == (end, end), (
        "after the restart the group's Kafka offsets still lag the ledger"
    )


def test_a_run_failing_half_way_leaves_nothing_and_is_read_again(
    store_url: str, topic: str, group: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    produce(topic, _first_records())
    end, _ = offsets(topic, group)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("injected: facts step failed")

    monkeypatch.setattr(facts, "compute_site_facts", broken)
    with pytest.raises(Exception, match="injected"):
        run(store_url, topic, group)
    monkeypatch.undo()

    statuses = run_status(store_url)
    assert list(statuses.values()) == ["failed"]
    failed = next(iter(statuses))
    # It did write (events, rejects, what it read) before failing ...
    assert query(store_url, f"SELECT count() FROM events WHERE run_id = {quote(failed)}") == [(11,)]
    # ... yet nothing of it is visible, and Kafka was not told.
    assert_export(store_url, {})
    assert offsets(topic, group) == (end, NOTHING_COMMITTED)

    s = run(store_url, topic, group)
    assert (s.read, s.rejected, s.duplicates, s.replayed, s.kept) == (
        14,
        {"not_json": 1, "missing_field": 1},
        1,
        0,
        11,
    )
    assert_export(store_url, AFTER_FIRST)
    assert offsets(topic, group) == (end, end)
    assert clean_export(store_url, tmp_path, topic) == export_csv(store_url)


def test_poison_records_are_rejected_and_do_not_block_later_runs(
    store_url: str, topic: str, group: str
) -> None:
    """Issue 8, defect 1: invalid UTF-8 in a string and 1,000 levels of nesting, in
    the middle of a partition, are rejected as not_json; the run commits, so the
    offsets move past them and the next run reads only what came after."""
    bad_utf8 = orjson.dumps(event(at=f"{DAY1} 08:05", device="dev-a")).replace(
        b'"https://news1.vn/a"', b'"caf\xe9"'
    )
    key = "news1.vn/dev-a"  # one key: everything lands in one partition, in this order
    produce(
        topic,
        [
            event(at=f"{DAY1} 08:00", device="dev-a"),
            (key, bad_utf8),
            (key, "[" * 1000 + "]" * 1000),
            event(at=f"{DAY1} 08:10", device="dev-a"),
        ],
    )
    s = run(store_url, topic, group)
    assert (s.read, s.rejected, s.kept) == (4, {"not_json": 2}, 2)
    raws = query(store_url, "SELECT raw FROM rejected_events ORDER BY position")
    assert raws == [(bad_utf8.decode("utf-8", "backslashreplace"),), ("[" * 1000 + "]" * 1000,)]
    end, committed = offsets(topic, group)
    assert committed == end and sum(end.values()) == 4
    produce(topic, [event(at=f"{DAY1} 08:20", device="dev-a")])
    s = run(store_url, topic, group)
    assert (s.read, s.rejected, s.kept) == (1, {}, 1)
    assert export(store_url)[(DAY1, "news1.vn")]["pageviews"] == 3


def _no_run_recorded(store_url: str) -> None:
    assert query(store_url, "SELECT count() FROM runs") == [(0,)]
    close_stores()


def test_unreachable_kafka_is_one_clear_error(tmp_path: Path) -> None:
    store = f"chdb:{tmp_path / 'store'}"
    result = cli("pipeline", "batch", "--kafka", "127.0.0.1:1", "--store", store, cwd=tmp_path)
    line = one_error_line(result)
    assert "Kafka" in line and "127.0.0.1:1" in line
    _no_run_recorded(store)


def test_missing_topic_is_one_clear_error(tmp_path: Path) -> None:
    store = f"chdb:{tmp_path / 'store'}"
    missing = f"pmtest.missing.{uuid.uuid4().hex[:12]}"
    result = cli(
        "pipeline", "batch", "--kafka", kafka_bootstrap(), "--topic", missing,
        "--store", store, cwd=tmp_path,
    )  # fmt: skip
    line = one_error_line(result)
    assert "Kafka" in line and missing in line and kafka_bootstrap() in line
    _no_run_recorded(store)


# ------------------------------------------------------------------ librdkafka reads


def source_rows(store_url: str) -> dict[str, tuple[int, int, int, int, str]]:
    """source_id → (first, last position, records, bytes, checksum) of the runs."""
    rows = query(
        store_url,
        "SELECT source_id, first_position, last_position, records, bytes, checksum "
        "FROM run_sources",
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def expected_sources(topic: str, sent: dict[int, list[bytes]], first: int = 0) -> dict:
    """What run_sources must say of partitions holding `sent` from offset `first`:
    the checksum is the SHA-256 of the values in offset order."""
    return {
        f"kafka:{topic}/{part}": (
            first,
            first + len(values) - 1,
            len(values),
            sum(map(len, values)),
            hashlib.sha256(b"".join(values)).hexdigest(),
        )
        for part, values in sent.items()
    }


FIRST_COUNTS = (14, {"not_json": 1, "missing_field": 1}, 1, 0, 11)


def counts(s: RunSummary) -> tuple:
    return (s.read, s.rejected, s.duplicates, s.replayed, s.kept)


@pytest.mark.parametrize("compression", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_every_compression_producers_use_is_read(
    compression: str, topic: str, group: str, tmp_path: Path
) -> None:
    sent = produce(topic, _first_records(), **{"compression.type": compression})
    assert sorted(sent) == list(range(PARTITIONS))
    with empty_store("chdb", tmp_path) as store:
        s = run(store, topic, group)
        assert counts(s) == FIRST_COUNTS
        assert_export(store, AFTER_FIRST)
        assert source_rows(store) == expected_sources(topic, sent)
    assert offsets(topic, group) == ({p: len(v) for p, v in sent.items()},) * 2


def test_offsets_without_records_are_skipped_and_committed(
    topic: str, group: str, tmp_path: Path
) -> None:
    """Transaction markers take offsets and hold no record: here each of the two
    transactions ends in a marker on every partition it wrote to, the last offset of
    each partition among them, so the slice ends on an offset no record holds."""
    records = _first_records()
    sent = produce(topic, records[:7], **{"transactional.id": f"pmtest-{uuid.uuid4().hex}"})
    more = produce(topic, records[7:], **{"transactional.id": f"pmtest-{uuid.uuid4().hex}"})
    end, _ = offsets(topic, group)
    assert sum(end.values()) > len(records), end  # the markers' offsets
    with empty_store("chdb", tmp_path) as store:
        s = run(store, topic, group)
        assert counts(s) == FIRST_COUNTS
        assert_export(store, AFTER_FIRST)
        rows = source_rows(store)
        for part in range(PARTITIONS):
            values = sent.get(part, []) + more.get(part, [])
            _, last, records_read, _, checksum = rows[f"kafka:{topic}/{part}"]
            assert (last, records_read) == (end[part] - 1, len(values))
            assert checksum == hashlib.sha256(b"".join(values)).hexdigest()
        assert offsets(topic, group) == (end, end)
        again = run(store, topic, group)
        assert counts(again) == (0, {}, 0, 0, 0)


def _a_run_that_loses_its_input(
    store: str, topic: str, group: str, lose: Any, monkeypatch: pytest.MonkeyPatch
) -> str:
    """The one-line error of a run whose input goes away between planning and
    reading: `lose` is a real broker operation, called right after the real plan
    (our own code wrapped). The run is recorded as failed."""
    real_plan = kafka_slices.plan_slices

    def plan_then_lose(*args: Any) -> list:
        slices = real_plan(*args)
        lose()
        return slices

    monkeypatch.setattr(kafka_slices, "plan_slices", plan_then_lose)
    with pytest.raises(InputError) as failure:
        run(store, topic, group)
    assert list(run_status(store).values()) == ["failed"]
    message = str(failure.value)
    assert "\n" not in message
    return message


def _admin() -> confluent_kafka.admin.AdminClient:
    return confluent_kafka.admin.AdminClient({"bootstrap.servers": kafka_bootstrap()})


def test_records_removed_after_planning_are_a_clear_error(
    topic: str, group: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retention removed offsets the run planned to read: an error naming the
    topic, partition and offset, never a silent jump past them."""
    produce(topic, _first_records()[:6], partition=1)
    admin, upto = _admin(), confluent_kafka.TopicPartition(topic, 1, 4)

    def delete_records() -> None:
        admin.delete_records([upto])[upto].result(timeout=30)

    with empty_store("chdb", tmp_path) as store:
        error = _a_run_that_loses_its_input(store, topic, group, delete_records, monkeypatch)
    assert error.startswith(f"cannot read Kafka topic {topic} partition 1 at offset 0 ")
    assert "Offset out of range" in error
    assert offsets(topic, group)[1] == NOTHING_COMMITTED


def test_a_topic_deleted_after_planning_is_a_clear_error(
    topic: str, group: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    produce(topic, _first_records()[:3], partition=2)
    admin = _admin()

    def delete_topic() -> None:
        admin.delete_topics([topic])[topic].result(timeout=30)

    with empty_store("chdb", tmp_path) as store:
        error = _a_run_that_loses_its_input(store, topic, group, delete_topic, monkeypatch)
    assert error.startswith(f"cannot read Kafka topic {topic} partition ")
    assert "at offset 0 " in error and "Unknown topic or partition" in error


def _segment_of(topic: str, partition: int) -> Path:
    """The broker's log file of a partition, wherever the broker keeps its data."""
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap(), client_id="pmtest-admin")
    try:
        folder = admin.describe_log_dirs()[0]["log_dirs"][0]["log_dir"]
    finally:
        admin.close()
    return Path(folder) / f"{topic}-{partition}" / f"{0:020d}.log"


def test_a_corrupt_batch_is_an_error_naming_its_offset(
    topic: str, group: str, tmp_path: Path
) -> None:
    """A byte flipped on the broker's disk (the broker serves it as it is) fails the
    batch's CRC: the run stops with the offset, nothing is stored or committed."""
    records = [event(at=f"{DAY1} 08:{n:02d}", device=f"dev-{n}") for n in range(8)]
    for record in records:  # one batch each
        produce(topic, [record], partition=0)
    segment = _segment_of(topic, 0)
    data = segment.read_bytes()
    at = data.index(orjson.dumps(records[5]["event_id"]))
    with segment.open("r+b") as log:
        log.seek(at + 1)
        log.write(b"X")
    with empty_store("chdb", tmp_path) as store:
        # WARNING: the run's INFO progress lines would come before the error line.
        result = cli(
            "--log-level", "WARNING", "pipeline", "batch", "--kafka", kafka_bootstrap(),
            "--topic", topic, "--rejected-topic", "", "--group", group, "--store", store,
            cwd=tmp_path,
        )  # fmt: skip
        line = one_error_line(result)
        assert line.startswith(
            f"pressmeter: error: cannot read Kafka topic {topic} partition 0 at offset 5 "
        )
        assert "CRC" in line
        assert query(store, "SELECT count() FROM events") == [(0,)]
        assert list(run_status(store).values()) == ["failed"]
    assert offsets(topic, group)[1] == NOTHING_COMMITTED


def test_a_broker_gone_while_reading_is_a_clear_error(
    topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slice was planned, then no broker answers: after the silence allowed
    (shortened here), one error naming topic, partition and offset."""
    monkeypatch.setattr(kafka_slices, "_SILENCE_S", 1.0)
    gone = KafkaSlice(0, "127.0.0.1:1", topic, 2, 7, 12)
    reader = kafka_slices.SliceReader(gone.bootstrap)
    try:
        with pytest.raises(InputError) as failure:
            list(reader.read(gone, 100))
    finally:
        reader.close()
    assert str(failure.value).startswith(
        f"cannot read Kafka topic {topic} partition 2 at offset 7 (slice 7..11 of 127.0.0.1:1): "
    )


def test_a_record_without_a_value_is_read_as_an_empty_line(topic: str) -> None:
    """A tombstone (no value) and an empty value both come as b"" (rejected
    downstream as lines with their reason), the others as they were sent."""
    producer = confluent_kafka.Producer({"bootstrap.servers": kafka_bootstrap()})
    for value in (b"first", None, b"", b"last"):
        producer.produce(topic, value, partition=0)
    assert producer.flush(30) == 0
    reader = kafka_slices.SliceReader(kafka_bootstrap())
    try:
        got = list(reader.read(KafkaSlice(0, kafka_bootstrap(), topic, 0, 0, 4), 100))
    finally:
        reader.close()
    assert got == [(0, [b"first", b"", b"", b"last"])]


# ------------------------------------------------------------------ the ingest's dead letters


def _dead_letter(reason: str, site: str, at: str, **fields: Any) -> dict[str, Any]:
    """A dead letter as collectors/ingest/steps.py writes it."""
    letter = {
        "reason": reason,
        "detail": f"refused: {reason}",
        "site_id": site,
        "received_at": local_ms(at),
        "raw": '{"type": "page_view"}',
    }
    return letter | fields


def _dead_letters() -> list[Record]:
    """(site key, value), as the ingest service keys them: 5 well-formed dead letters,
    5 malformed ones (each stored with the reason it breaks)."""
    missing_detail = _dead_letter("not_json", "tv1.vn", f"{DAY1} 10:00")
    del missing_detail["detail"]
    letters = [
        _dead_letter("not_json", "news1.vn", f"{DAY1} 09:00", raw="{bad"),
        _dead_letter("invalid_value", "news1.vn", f"{DAY1} 23:59"),
        _dead_letter("invalid_value", "news1.vn", f"{DAY1} 00:00"),
        _dead_letter("personal_data", "tv1.vn", f"{DAY2} 00:01"),  # 17:01 UTC the day before
        _dead_letter("ts_out_of_window", "tv1.vn", f"{DAY2} 12:00"),
        missing_detail,
        _dead_letter("lost", "news1.vn", f"{DAY1} 10:00"),  # not a reason
        _dead_letter("not_json", "news1.vn", f"{DAY1} 10:00", received_at="yesterday"),
    ]
    return [
        *((letter["site_id"], orjson.dumps(letter).decode()) for letter in letters),
        ("news1.vn", "{not json"),
        ("news1.vn", "[1, 2]"),
    ]


def test_dead_letters_are_stored_as_rejected_at_ingest(
    store_url: str, topic: str, dead_letter_topic: str, group: str, tmp_path: Path
) -> None:
    produce(topic, _first_records())
    produce(dead_letter_topic, _dead_letters())
    end, _ = offsets(dead_letter_topic, group)
    assert sum(end.values()) == 10

    s = run(store_url, topic, group, dead_letter_topic)
    assert counts(s) == FIRST_COUNTS  # the events, as without dead letters
    assert s.dead_letters == 10
    assert s.rejected_at_ingest == {
        "not_json": 2,  # one well-formed, one not JSON at all
        "invalid_value": 3,  # two well-formed, one with a reason outside the set
        "personal_data": 1,
        "ts_out_of_window": 1,
        "not_object": 1,
        "missing_field": 1,
        "wrong_type": 1,
    }
    assert "at ingest   10 dead letters" in s.render()
    assert offsets(dead_letter_topic, group) == (end, end)
    assert_export(store_url, AFTER_FIRST)  # dead letters count nowhere else

    again = run(store_url, topic, group, dead_letter_topic)
    assert (again.read, again.dead_letters, again.rejected_at_ingest) == (0, 0, {})
    # Dead letters alone: a run with no new event still loads them.
    produce(dead_letter_topic, [_dead_letters()[1]])
    only = run(store_url, topic, group, dead_letter_topic)
    assert (only.read, only.dead_letters, only.rejected_at_ingest) == (0, 1, {"invalid_value": 1})

    today = day_to_date(LocalCalendar(ZONE).day(int(time.time() * 1000)))
    close_stores()
    got = [tuple(r) for r in reject_counts(open_store(store_url), ZONE)]
    assert got == sorted(
        [
            (date.fromisoformat(DAY1), "ingest", "news1.vn", "invalid_value", 3),
            (date.fromisoformat(DAY1), "ingest", "news1.vn", "not_json", 1),
            (date.fromisoformat(DAY2), "ingest", "tv1.vn", "personal_data", 1),
            (date.fromisoformat(DAY2), "ingest", "tv1.vn", "ts_out_of_window", 1),
            # Malformed: counted on the day of the run that stored them.
            (today, "ingest", "", "not_json", 1),
            (today, "ingest", "", "not_object", 1),
            (today, "ingest", "news1.vn", "invalid_value", 1),
            (today, "ingest", "news1.vn", "wrong_type", 1),
            (today, "ingest", "tv1.vn", "missing_field", 1),
            (today, "pipeline", "news1.vn", "missing_field", 1),
            (today, "pipeline", "", "not_json", 1),
        ]
    )

    close_stores()
    tv_days = cli(
        "rejects", "--format", "csv", "--from", DAY1, "--to", DAY2, "--site", "tv1.vn",
        "--store", store_url, cwd=tmp_path,
    )  # fmt: skip
    assert tv_days.returncode == 0, tv_days.stderr
    assert tv_days.stdout == (
        "day,stage,site_id,reason,rejected\n"
        f"{DAY2},ingest,tv1.vn,personal_data,1\n"
        f"{DAY2},ingest,tv1.vn,ts_out_of_window,1\n"
    )
    table = cli("rejects", "--to", DAY1, "--store", store_url, cwd=tmp_path)
    assert table.stdout.splitlines()[-1] == "total 4 rejected in 2 rows"


def test_a_missing_dead_letter_topic_is_one_clear_error(topic: str, tmp_path: Path) -> None:
    store = f"chdb:{tmp_path / 'store'}"
    missing = f"pmtest.missing.{uuid.uuid4().hex[:12]}"
    result = cli(
        "pipeline", "batch", "--kafka", kafka_bootstrap(), "--topic", topic,
        "--rejected-topic", missing, "--store", store, cwd=tmp_path,
    )  # fmt: skip
    assert one_error_line(result) == (
        f"pressmeter: error: Kafka topic {missing} does not exist at {kafka_bootstrap()}"
    )
    _no_run_recorded(store)
