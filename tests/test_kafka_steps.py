"""A Kafka batch run in bounded steps (pipelines/steps.py): each partition's slice
is cut into pieces of at most `step_records` offsets, read one step at a time,
and the run counts exactly as one step would, offsets committed once at the end."""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from support import ZONE, event, fresh_store, kafka_bootstrap

from pressmeter.metrics import metric_rows, write_csv
from pressmeter.pipelines.batch import BatchRequest, RunSummary, run_batch
from pressmeter.store import close_stores, open_store

pytestmark = pytest.mark.kafka

DAY = "2026-10-05"


@pytest.fixture
def topic() -> Iterator[str]:
    """A fresh one-partition topic holding 7 events, in this order: a view, 3 others,
    then 2 later-read copies of the view received earlier (the first of them wins)."""
    name = f"pmtest.{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap()})
    admin.create_topics([NewTopic(name, 1, 1)])[name].result(timeout=30)
    view = event(at=f"{DAY} 08:00", device="dev-a")
    records = [
        view,
        event(at=f"{DAY} 08:05", device="dev-a"),
        event(at=f"{DAY} 09:00", device="dev-b"),
        event(at=f"{DAY} 09:01", device="dev-b"),
        {**view, "received_at": view["received_at"] - 200},
        {**view, "received_at": view["received_at"] - 100},
        event(at=f"{DAY} 10:00", device="dev-c"),
    ]
    producer = Producer({"bootstrap.servers": kafka_bootstrap(), "acks": "all"})
    for record in records:
        producer.produce(name, orjson.dumps(record))
    assert producer.flush(30) == 0
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            admin.delete_topics([name])[name].result(timeout=30)


def _run(store_url: str, topic: str, group: str, **options: int) -> RunSummary:
    close_stores()
    request = BatchRequest(
        store_url, ZONE, kafka=kafka_bootstrap(), topic=topic, group=group, **options
    )
    return run_batch(request)


def _export(store_url: str) -> str:
    close_stores()
    out = io.StringIO()
    write_csv(metric_rows(open_store(store_url)), out)
    return out.getvalue()


def test_a_kafka_run_in_steps_counts_like_one_step(
    store_url: str, topic: str, tmp_path: Path
) -> None:
    group = f"pmtest-{uuid.uuid4().hex[:12]}"
    stepped = _run(store_url, topic, group, step_records=2)
    assert (stepped.read, stepped.kept, stepped.duplicates_within_run) == (7, 5, 2)
    close_stores()
    store = open_store(store_url)
    ranges = store.rows(
        "SELECT first_position, last_position FROM run_sources ORDER BY first_position"
    )
    assert ranges == [(0, 1), (2, 3), (4, 5), (6, 6)]
    # The view's copy kept is offset 4, the earliest received, as in one step.
    assert store.rows(
        "SELECT position FROM events WHERE device_id = 'dev-a' ORDER BY position"
    ) == [
        (1,),
        (4,),
    ]
    with fresh_store(store_url, tmp_path) as other:
        one_step = _run(other, topic, f"{group}-one")
        assert (one_step.read, one_step.kept, one_step.duplicates) == (7, 5, 2)
        assert _export(store_url) == _export(other)
    again = _run(store_url, topic, group, step_records=2)
    assert (again.read, again.kept) == (0, 0)  # the group's offsets were committed at the end
