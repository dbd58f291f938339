"""Bounded slices of a Kafka topic, read and committed with kafka-python.

A batch run reads, per partition, from the consumer group's committed offset (or
the ledger's, if a run stored its results but died before committing to Kafka)
to the end offset seen when the run starts. Offsets are committed only after the
store holds the run's results, so a failure anywhere re-reads, never skips.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pressmeter.errors import InputError
from pressmeter.pipelines.sources import KafkaSlice

__all__ = ["commit_offsets", "plan_slices", "read_slice"]

_TIMEOUT_MS = 10_000


def _consumer(bootstrap: str, group: str | None) -> Any:
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        return KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            request_timeout_ms=30_000,
            bootstrap_timeout_ms=_TIMEOUT_MS,
            max_partition_fetch_bytes=8 << 20,
        )
    except (KafkaError, OSError, ValueError) as exc:
        raise InputError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc


def plan_slices(
    bootstrap: str, topic: str, group: str, stored_next: dict[int, int]
) -> list[KafkaSlice]:
    """One slice per partition, empty where there is nothing new. `stored_next` is,
    per partition, the offset after the last one a committed run of this group
    stored: ahead of Kafka's committed offset when a run died between its store
    commit and its Kafka commit. Empty slices are still committed, which repairs
    that lag."""
    from kafka import TopicPartition

    consumer = _consumer(bootstrap, group)
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise InputError(f"Kafka topic {topic} does not exist at {bootstrap}")
        parts = [TopicPartition(topic, p) for p in sorted(partitions)]
        begin = consumer.beginning_offsets(parts)
        end = consumer.end_offsets(parts)
        slices = []
        for index, part in enumerate(parts):
            committed = consumer.committed(part)
            start = max(
                committed if committed is not None else begin[part],
                stored_next.get(part.partition, 0),
                begin[part],
            )
            slices.append(
                KafkaSlice(index, bootstrap, topic, part.partition, start, max(start, end[part]))
            )
        return slices
    finally:
        consumer.close()


def read_slice(part: KafkaSlice, batch_size: int) -> Iterator[tuple[int, list[bytes]]]:
    """(first offset, values) runs of consecutive offsets, up to `batch_size` each."""
    from kafka import TopicPartition

    consumer = _consumer(part.bootstrap, None)
    tp = TopicPartition(part.topic, part.partition)
    consumer.assign([tp])
    consumer.seek(tp, part.start)
    first, values, expected = part.start, [], part.start
    try:
        while expected < part.end:
            records = consumer.poll(timeout_ms=_TIMEOUT_MS, max_records=batch_size).get(tp, [])
            if not records and consumer.position(tp) < part.end:
                raise InputError(f"Kafka stopped answering while reading {part.source_id}")
            for record in records:
                if record.offset >= part.end:
                    break
                # A gap (transaction markers, compaction) starts a new run of offsets.
                if record.offset != expected or len(values) == batch_size:
                    if values:
                        yield first, values
                    first, values = record.offset, []
                values.append(record.value)
                expected = record.offset + 1
            if consumer.position(tp) >= part.end:
                break
    finally:
        consumer.close()
    if values:
        yield first, values


def commit_offsets(bootstrap: str, group: str, slices: list[KafkaSlice]) -> None:
    """Tell Kafka the group has consumed up to each slice's end."""
    from kafka import TopicPartition
    from kafka.structs import OffsetAndMetadata

    if not slices:
        return
    consumer = _consumer(bootstrap, group)
    try:
        consumer.commit(
            {TopicPartition(s.topic, s.partition): OffsetAndMetadata(s.end, "", -1) for s in slices}
        )
    finally:
        consumer.close()
