"""An unbounded Kafka source for the live pipeline: a splittable DoFn on confluent-kafka.

Beam's own ReadFromKafka is a Java transform reached through an expansion
service whose jars are not all on Maven Central, so the live pipeline reads
Kafka in Python. One element for the whole topic, read by one consumer; its
restriction is the next offset of each partition, claimed batch by batch. The
tracker refuses splits (Prism asks for them to balance work; a partition is
read by one consumer, in order) and accepts only the checkpoints the DoFn
itself asks for between polls.

One element, not one per partition: Prism 2.75 takes a step's output watermark
from the residuals of the bundle that finished last, not from all of them, so
with an element per partition a bundle holding only idle partitions moved the
watermark past records another partition still had in flight (their minutes
were closed before those records reached them: test_lateness_boundary under
load). The watermark (watermark.py) is the minimum over the partitions: each
follows the Kafka timestamps of its records (ingest's send time, CreateTime),
and an idle one (read to its end) moves on with the wall clock from its newest
record, so quiet partitions do not hold the live figures back. Positions are committed to the
consumer group by the pipeline's last step (pipelines/live/sinks.py), never here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam
import numpy as np
from apache_beam.io.iobase import RestrictionProgress, RestrictionTracker
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.utils.timestamp import Duration, Timestamp

from pressmeter.errors import InputError
from pressmeter.pipelines.live.watermark import TopicWatermark, TopicWatermarks

__all__ = [
    "KafkaPoll",
    "KafkaRecords",
    "ReadTopicFn",
    "TopicStart",
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
_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TopicStart:
    """A topic to read, each partition from its offset in `offsets` ((partition, offset))."""

    bootstrap: str
    topic: str
    group: str
    offsets: tuple[tuple[int, int], ...]


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


@dataclass(frozen=True)
class KafkaPoll:
    """One poll's records, a KafkaRecords per partition: one element, so each step
    downstream handles a poll at once, not a partition at a time."""

    batches: list[KafkaRecords]

    @property
    def nbytes(self) -> int:
        return sum(batch.nbytes for batch in self.batches)


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
) -> TopicStart:
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
            starts.append((done.partition, max(offset, low)))
        return TopicStart(bootstrap, topic, group, tuple(starts))
    except KafkaException as exc:
        raise InputError(f"cannot reach Kafka at {bootstrap}: {exc}") from exc
    finally:
        reader.close()


@dataclass(frozen=True)
class NextOffsets:
    """The restriction: the next offset to read of each partition ((partition, offset));
    `closed` once checkpointed (a primary: nothing left to claim)."""

    offsets: tuple[tuple[int, int], ...]
    closed: bool = False


class NextOffsetsTracker(RestrictionTracker):
    """Claims a batch at a time ((partition, next offset after it)); only checkpoints
    (a split at the current positions) are accepted, so a partition is never read by
    two workers."""

    def __init__(self, restriction: NextOffsets) -> None:
        self._restriction = restriction
        self._next = dict(restriction.offsets)
        self._closed = restriction.closed

    def current_restriction(self) -> NextOffsets:
        return self._restriction

    def try_claim(self, position: tuple[int, int]) -> bool:
        if self._closed:
            return False
        partition, next_offset = position
        self._next[partition] = next_offset
        return True

    def try_split(self, fraction_of_remainder: float) -> tuple[NextOffsets, NextOffsets] | None:
        if fraction_of_remainder > 0 or self._closed:
            return None
        self._closed = True
        self._restriction = NextOffsets(self._restriction.offsets, closed=True)
        return self._restriction, NextOffsets(tuple(sorted(self._next.items())))

    def current_progress(self) -> RestrictionProgress:
        return RestrictionProgress(completed=0, remaining=1)

    def check_done(self) -> None:
        return None  # claims are whole batches: nothing is ever left half-read

    def is_bounded(self) -> bool:
        return False


class TopicRestrictions(RestrictionProvider):
    """The start offsets, never split up front."""

    def initial_restriction(self, element: TopicStart) -> NextOffsets:
        return NextOffsets(element.offsets)

    def create_tracker(self, restriction: NextOffsets) -> NextOffsetsTracker:
        return NextOffsetsTracker(restriction)

    def restriction_size(self, element: TopicStart, restriction: NextOffsets) -> int:
        return 1

    def split(self, element: TopicStart, restriction: NextOffsets) -> Iterator[NextOffsets]:
        yield restriction

    def truncate(self, element: TopicStart, restriction: NextOffsets) -> None:
        return None  # a drained job stops reading; the committed position stays


_RESTRICTIONS = TopicRestrictions()
_WATERMARKS = TopicWatermarks()


@dataclass
class _Reader:
    """The topic's consumer in this DoFn instance: the next offset it reads per
    partition, and the partitions it has read a record of (their cached end
    offsets then come from a fetch)."""

    client: Any
    next_offsets: dict[int, int]
    fetched: set[int] = field(default_factory=set)


class ReadTopicFn(beam.DoFn):
    """TopicStart → KafkaPoll (one per poll that read records), unbounded, each
    stamped with its oldest record's time."""

    def setup(self) -> None:
        self._readers: dict[str, _Reader] = {}

    def teardown(self) -> None:
        for reader in self._readers.values():
            reader.client.close()

    def _reader(self, topic: TopicStart, restriction: NextOffsets) -> _Reader:
        """This instance's consumer, at the restriction's offsets (Prism may resume
        the element on another instance: a checkpoint elsewhere moved them on)."""
        from confluent_kafka import TopicPartition

        wanted = dict(restriction.offsets)
        reader = self._readers.get(topic.topic)
        if reader is None:
            reader = _Reader(consumer(topic.bootstrap, topic.group), dict(wanted))
            reader.client.assign([TopicPartition(topic.topic, p, o) for p, o in wanted.items()])
            self._readers[topic.topic] = reader
        for partition, offset in wanted.items():
            if reader.next_offsets[partition] != offset:
                reader.client.seek(TopicPartition(topic.topic, partition, offset))
                reader.next_offsets[partition] = offset
                reader.fetched.discard(partition)
        return reader

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        topic: TopicStart,
        tracker: NextOffsetsTracker = beam.DoFn.RestrictionParam(_RESTRICTIONS),
        watermark: TopicWatermark = beam.DoFn.WatermarkEstimatorParam(_WATERMARKS),
    ) -> Iterator[beam.window.TimestampedValue]:
        reader = self._reader(topic, tracker.current_restriction())
        messages = reader.client.consume(POLL_RECORDS, POLL_SECONDS)
        records = [m for m in messages if m.error() is None]
        for error in (m.error() for m in messages if m.error() is not None):
            log.warning("Kafka %s: %s", topic.topic, error)
        batches = [_batch(run) for run in _runs(records)]
        for batch in batches:
            if not tracker.try_claim((batch.partition, batch.next_offset)):
                return
            reader.next_offsets[batch.partition] = batch.next_offset
            reader.fetched.add(batch.partition)
        if batches:
            poll = KafkaPoll(batches)
            yield beam.window.TimestampedValue(poll, _stamp(poll, watermark))
        for batch in batches:
            watermark.records_read(
                batch.partition, int(batch.record_ms.min()), int(batch.record_ms.max())
            )
        read = {batch.partition for batch in batches}
        for partition in reader.next_offsets.keys() - read:
            if _caught_up(reader, topic.topic, partition):
                watermark.idle(partition)
        watermark.advance()
        tracker.defer_remainder(Duration() if records else IDLE_RESUME)


def _runs(records: list) -> Iterator[list]:
    """Runs of consecutive offsets of one partition (a gap: transaction markers,
    compaction). A poll interleaves the partitions in chunks of a few records:
    grouped per partition first (each in its order), a poll makes one batch per
    partition, not hundreds."""
    by_partition: dict[int, list] = {}
    for record in records:
        by_partition.setdefault(record.partition(), []).append(record)
    for ordered in by_partition.values():
        run: list = []
        for record in ordered:
            if run and record.offset() != run[-1].offset() + 1:
                yield run
                run = []
            run.append(record)
        yield run


def _batch(run: list) -> KafkaRecords:
    return KafkaRecords(
        run[0].partition(),
        run[0].offset(),
        [m.value() for m in run],
        np.fromiter((m.timestamp()[1] for m in run), np.int64, len(run)),
    )


def _stamp(poll: KafkaPoll, watermark: TopicWatermark) -> Timestamp:
    """A poll's event time: its oldest record's (never behind the watermark).

    The watermark then stays at the oldest record still in flight, so no step
    sees the watermark pass a minute's end before that minute's records have
    reached it, even when one poll spans minutes (a backlog after a restart).
    """
    oldest_ms = min(int(batch.record_ms.min()) for batch in poll.batches)
    oldest = Timestamp(micros=oldest_ms * 1000)
    current = watermark.current_watermark()
    return oldest if current is None or oldest > current else current


def _caught_up(reader: _Reader, topic: str, partition: int) -> bool:
    """Whether the partition has nothing more to read (its end offset, as the last
    fetch reported it). Only then is it idle: an empty poll of a partition with a
    backlog (just after a restart) must not move its watermark to the wall clock."""
    from confluent_kafka import TopicPartition

    # Until this client has read a record of the partition, ask the broker: its
    # cached end offset may not come from a fetch yet.
    _, end = reader.client.get_watermark_offsets(
        TopicPartition(topic, partition),
        timeout=_TIMEOUT_S,
        cached=partition in reader.fetched,
    )
    return end >= 0 and reader.next_offsets[partition] >= end
