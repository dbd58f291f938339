"""An unbounded Kafka source for the live pipeline: a splittable DoFn on confluent-kafka.

Beam's own ReadFromKafka is a Java transform reached through an expansion
service whose jars are not all on Maven Central, so the live pipeline reads
Kafka in Python. One element per partition; its restriction is the offset range
[start, ∞), claimed batch by batch. The tracker refuses mid-range splits (Prism
asks for them to balance work; a partition is read by one consumer, in order)
and accepts only the checkpoints the DoFn itself asks for between polls.

The watermark of a partition follows the Kafka timestamps of its records
(ingest's send time, CreateTime): each batch is stamped with its oldest record's
time and the watermark moves to it. An idle partition's watermark (one read to its end)
moves on with the wall clock from its newest record, so quiet partitions do
not hold the live figures back. Positions are committed to the consumer group by the pipeline's
last step (pipelines/live/commit.py), never here.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.utils.timestamp import Duration, Timestamp

from pressmeter.errors import InputError

__all__ = [
    "KafkaRecords",
    "PartitionStart",
    "ReadPartitionsFn",
    "consumer",
    "plan_partitions",
]

log = logging.getLogger(__name__)
# librdkafka's own log lines (connection retries): under "kafka", which the CLI
# keeps quiet unless --log-level DEBUG; our errors already name the problem.
_client_log = logging.getLogger("kafka.librdkafka")

POLL_RECORDS = 5_000
# A poll waits this long for records: batches of a few hundred records at
# 1,000 events/s, so each step handles a few elements a second, not hundreds.
POLL_SECONDS = 0.1
# How long a poll that found nothing waits before the next one.
IDLE_RESUME = Duration(seconds=0.05)
# An idle partition's watermark trails the wall clock by this much: a record
# sent just now may still be on its way from the broker.
IDLE_LAG_MS = 2_000
_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class PartitionStart:
    """One partition to read, from `offset` on."""

    bootstrap: str
    topic: str
    partition: int
    offset: int
    group: str


@dataclass(frozen=True)
class KafkaRecords:
    """Consecutive records of one partition: `values[i]` sits at `first_offset + i`,
    sent at `record_ms[i]` (the Kafka timestamp)."""

    partition: int
    first_offset: int
    values: list[bytes]
    record_ms: np.ndarray

    @property
    def next_offset(self) -> int:
        return self.first_offset + len(self.values)

    @property
    def nbytes(self) -> int:
        return sum(map(len, self.values)) + self.record_ms.nbytes


def consumer(bootstrap: str, group: str) -> Any:
    """A confluent-kafka consumer that never commits by itself."""
    from confluent_kafka import Consumer

    return Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 50,
            "socket.timeout.ms": int(_TIMEOUT_S * 1000),
            "logger": _client_log,
        }
    )


def plan_partitions(
    bootstrap: str, topic: str, group: str, from_beginning: bool, horizon_ms: int
) -> list[PartitionStart]:
    """Where each partition resumes: the group's committed offset; without one,
    the first record of the last `horizon_ms` (or the partition's first record)."""
    from confluent_kafka import KafkaException, TopicPartition

    reader = consumer(bootstrap, group)
    try:
        metadata = reader.list_topics(topic, timeout=_TIMEOUT_S)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            raise InputError(f"Kafka topic {topic} does not exist at {bootstrap}")
        parts = [TopicPartition(topic, p) for p in sorted(found.partitions)]
        committed = reader.committed(parts, timeout=_TIMEOUT_S)
        since = int(time.time() * 1000) - horizon_ms
        by_time = reader.offsets_for_times(
            [TopicPartition(topic, p.partition, since) for p in parts], timeout=_TIMEOUT_S
        )
        starts = []
        for done, recent in zip(committed, by_time):
            low, high = reader.get_watermark_offsets(done, timeout=_TIMEOUT_S)
            if done.offset >= 0:
                offset = done.offset
            elif from_beginning:
                offset = low
            else:
                offset = recent.offset if recent.offset >= 0 else high
            starts.append(PartitionStart(bootstrap, topic, done.partition, max(offset, low), group))
        return starts
    except KafkaException as exc:
        raise InputError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    finally:
        reader.close()


class WholeRangeTracker(OffsetRestrictionTracker):
    """Offsets as the restriction; only checkpoints (a split at the current
    position) are accepted, so one partition is never read by two workers."""

    def try_split(self, fraction_of_remainder: float) -> Any:
        if fraction_of_remainder > 0:
            return None
        return super().try_split(0)


class PartitionRestrictions(RestrictionProvider):
    """[start, ∞) per partition, never split up front."""

    def initial_restriction(self, element: PartitionStart) -> OffsetRange:
        return OffsetRange(element.offset, sys.maxsize)

    def create_tracker(self, restriction: OffsetRange) -> WholeRangeTracker:
        return WholeRangeTracker(restriction)

    def restriction_size(self, element: PartitionStart, restriction: OffsetRange) -> int:
        return 1

    def split(self, element: PartitionStart, restriction: OffsetRange) -> Iterator[OffsetRange]:
        yield restriction

    def truncate(self, element: PartitionStart, restriction: OffsetRange) -> None:
        return None  # a drained job stops reading; the committed position stays


_RESTRICTIONS = PartitionRestrictions()


@dataclass
class _Reader:
    """A partition's consumer and what its watermark is extrapolated from."""

    client: Any
    next_offset: int
    last_record_ms: int | None = None
    seen_at_ms: int = 0


class ReadPartitionsFn(beam.DoFn):
    """PartitionStart → KafkaRecords, unbounded, timestamped with their newest record."""

    def setup(self) -> None:
        self._readers: dict[tuple[str, int], _Reader] = {}

    def teardown(self) -> None:
        for reader in self._readers.values():
            reader.client.close()

    def _reader(self, part: PartitionStart, start: int) -> _Reader:
        from confluent_kafka import TopicPartition

        key = (part.topic, part.partition)
        reader = self._readers.get(key)
        if reader is None:
            reader = _Reader(consumer(part.bootstrap, part.group), start)
            reader.client.assign([TopicPartition(part.topic, part.partition, start)])
            self._readers[key] = reader
        elif reader.next_offset != start:  # a checkpoint left records unclaimed
            reader.client.seek(TopicPartition(part.topic, part.partition, start))
            reader.next_offset = start
        return reader

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        part: PartitionStart,
        tracker: WholeRangeTracker = beam.DoFn.RestrictionParam(_RESTRICTIONS),
        watermark: ManualWatermarkEstimator = beam.DoFn.WatermarkEstimatorParam(
            ManualWatermarkEstimator.default_provider()
        ),
    ) -> Iterator[beam.window.TimestampedValue]:
        reader = self._reader(part, tracker.current_restriction().start)
        messages = reader.client.consume(POLL_RECORDS, POLL_SECONDS)
        records = [m for m in messages if m.error() is None]
        for error in (m.error() for m in messages if m.error() is not None):
            log.warning("Kafka %s/%d: %s", part.topic, part.partition, error)
        for run in _consecutive(records):
            if not tracker.try_claim(run[-1].offset()):
                return
            batch = KafkaRecords(
                part.partition,
                run[0].offset(),
                [m.value() for m in run],
                np.fromiter((m.timestamp()[1] for m in run), np.int64, len(run)),
            )
            reader.next_offset = batch.next_offset
            stamp = _stamp(batch, watermark)
            yield beam.window.TimestampedValue(batch, stamp)
            watermark.set_watermark(stamp)
            newest = int(batch.record_ms.max())
            if reader.last_record_ms is None or newest > reader.last_record_ms:
                reader.last_record_ms, reader.seen_at_ms = newest, _now_ms()
        if not records and _caught_up(reader, part):
            _advance(watermark, _watermark_ms(reader))
        tracker.defer_remainder(Duration() if records else IDLE_RESUME)


def _consecutive(records: list) -> Iterator[list]:
    """Runs of consecutive offsets (a gap: transaction markers, compaction)."""
    run: list = []
    for record in records:
        if run and record.offset() != run[-1].offset() + 1:
            yield run
            run = []
        run.append(record)
    if run:
        yield run


def _stamp(batch: KafkaRecords, watermark: ManualWatermarkEstimator) -> Timestamp:
    """A batch's event time: its oldest record's (never behind the watermark).

    The watermark then stays at the oldest record still in flight, so no step
    sees the watermark pass a minute's end before that minute's records have
    reached it, even when one poll spans minutes (a backlog after a restart).
    """
    oldest = Timestamp(micros=int(batch.record_ms.min()) * 1000)
    current = watermark.current_watermark()
    return oldest if current is None or oldest > current else current


def _caught_up(reader: _Reader, part: PartitionStart) -> bool:
    """Whether the partition has nothing more to read (its end offset, as the last
    fetch reported it). Only then is it idle: an empty poll of a partition with a
    backlog (just after a restart) must not move its watermark to the wall clock."""
    from confluent_kafka import TopicPartition

    # Until a record is read, ask the broker: the client's cached end offset
    # may not come from a fetch yet.
    _, end = reader.client.get_watermark_offsets(
        TopicPartition(part.topic, part.partition),
        timeout=_TIMEOUT_S,
        cached=reader.last_record_ms is not None,
    )
    return end >= 0 and reader.next_offset >= end


def _now_ms() -> int:
    return int(time.time() * 1000)


def _watermark_ms(reader: _Reader) -> int:
    """The newest record's time, moved on by the wall-clock time since it was read."""
    if reader.last_record_ms is None:
        return _now_ms() - IDLE_LAG_MS
    idle = max(0, _now_ms() - reader.seen_at_ms - IDLE_LAG_MS)
    return reader.last_record_ms + idle


def _advance(watermark: ManualWatermarkEstimator, ms: int) -> None:
    target = Timestamp(micros=ms * 1000)
    current = watermark.current_watermark()
    if current is None or target > current:
        watermark.set_watermark(target)
