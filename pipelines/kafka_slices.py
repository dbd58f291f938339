"""Bounded slices of a Kafka topic, read and committed with librdkafka (confluent-kafka).

A batch run reads, per partition, from the consumer group's committed offset (or
the ledger's, if a run stored its results but died before committing to Kafka)
to the end offset seen when the run starts. Offsets are committed only after the
store holds the run's results, so a failure anywhere re-reads, never skips.

Why librdkafka: kafka-python decoded records in Python at about 12,000 a second
on one core, the whole cost of a Kafka run; librdkafka fetches, decompresses
(gzip, snappy, lz4, zstd) and checks CRCs in C, and `consume` hands over large
batches, so the Python side only collects the values.

Isolation is `read_uncommitted`, kafka-python's default, so the end offsets seen
at start and the records read agree whatever the producers do; the gaps that
transaction markers and compaction leave in the offsets are skipped.
"""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from pressmeter.errors import InputError
from pressmeter.pipelines.sources import KafkaSlice

__all__ = ["SliceReader", "commit_offsets", "plan_slices"]

_TIMEOUT_S = 10.0
T = TypeVar("T")
# How long a read may see nothing before it gives up: librdkafka retries by itself.
_SILENCE_S = 30.0
# Readers assign partitions by hand: they never join this group nor commit to it.
_READER_GROUP = "pressmeter-slice-reader"
_GONE = frozenset(
    {
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
    }
)
# The longest one consume() call waits for its count (the end of a slice whose
# last offsets hold no record waits this once).
_WAIT_S = 0.2


def _consumer(bootstrap: str, group: str, **extra: Any) -> Consumer:
    config = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_uncommitted",
        # A start offset the broker no longer holds is an error, never a silent jump.
        "auto.offset.reset": "error",
        "socket.connection.setup.timeout.ms": int(_TIMEOUT_S * 1000),
        "log_level": 0,  # errors reach us through the calls (and error_cb), not stderr
        **extra,
    }
    try:
        return Consumer(config)
    except (KafkaException, ValueError) as exc:
        raise InputError(f"cannot set up a Kafka consumer for {bootstrap}: {exc}") from exc


def _partitions(consumer: Consumer, bootstrap: str, topic: str) -> list[int]:
    try:
        metadata = consumer.list_topics(topic, timeout=_TIMEOUT_S)
    except KafkaException as exc:
        raise InputError(f"cannot reach Kafka at {bootstrap}: {exc.args[0]}") from exc
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise InputError(f"Kafka topic {topic} does not exist at {bootstrap}")
    return sorted(found.partitions)


# Answers of a group coordinator that is moving or still loading (a fresh broker
# creates its offsets topic on a group's first request): worth asking again.
_COORDINATOR_SETTLING = frozenset(
    {
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
    }
)


def _while_coordinator_settles(call: Callable[[], T]) -> T:
    """`call()`, asked again for up to _TIMEOUT_S while the group's coordinator
    is moving or loading; any other error, or one that lasts, is raised."""
    deadline = time.monotonic() + _TIMEOUT_S
    while True:
        try:
            return call()
        except KafkaException as exc:
            code = exc.args[0].code() if isinstance(exc.args[0], KafkaError) else None
            if code not in _COORDINATOR_SETTLING or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def plan_slices(
    bootstrap: str, topic: str, group: str, stored_next: dict[int, int], first_index: int = 0
) -> list[KafkaSlice]:
    """One slice per partition, empty where there is nothing new. `stored_next` is,
    per partition, the offset after the last one a committed run of this group
    stored: ahead of Kafka's committed offset when a run died between its store
    commit and its Kafka commit. Empty slices are still committed, which repairs
    that lag. Source indexes count from `first_index`."""
    consumer = _consumer(bootstrap, group)
    try:
        partitions = _partitions(consumer, bootstrap, topic)
        try:
            committed = _while_coordinator_settles(
                lambda: consumer.committed(
                    [TopicPartition(topic, p) for p in partitions], timeout=_TIMEOUT_S
                )
            )
            marks = [
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=_TIMEOUT_S)
                for p in partitions
            ]
        except KafkaException as exc:
            raise InputError(
                f"cannot read the offsets of group {group} on Kafka topic {topic} "
                f"at {bootstrap}: {exc.args[0]}"
            ) from exc
        slices = []
        for index, (part, (begin, end)) in enumerate(zip(committed, marks), first_index):
            start = max(
                part.offset if part.offset != OFFSET_INVALID else begin,
                stored_next.get(part.partition, 0),
                begin,
            )
            slices.append(
                KafkaSlice(index, bootstrap, topic, part.partition, start, max(start, end))
            )
        return slices
    finally:
        consumer.close()


class SliceReader:
    """One consumer, assigned to one slice after another (a DoFn keeps it for its
    life: connecting costs more than reading a small slice)."""

    def __init__(self, bootstrap: str) -> None:
        self.last_error: KafkaError | None = None
        self._consumer = _consumer(
            bootstrap,
            _READER_GROUP,
            error_cb=self._on_error,
            # Large fetches: fewer round trips, and librdkafka's queue stays ahead
            # of the pipeline (a 20,000-record batch is 11 MiB). The queue holds
            # records fetched but not consumed: memory of the run, and past a
            # slice's end, fetched for nothing; 32 MiB, not 256, keeps both small.
            **{
                "fetch.max.bytes": 16 << 20,
                "max.partition.fetch.bytes": 16 << 20,
                "queued.max.messages.kbytes": 32 << 10,
                "check.crcs": True,
                # Long fetches of the partition read before delay the next one's.
                "fetch.wait.max.ms": 10,
                # The topic existed when the run was planned: if it is gone now, say
                # so in a second or two, not librdkafka's 30 s grace for new topics.
                "topic.metadata.propagation.max.ms": 2000,
                "enable.partition.eof": True,
            },
        )

    def _on_error(self, error: KafkaError) -> None:
        self.last_error = error

    def close(self) -> None:
        self._consumer.close()

    def read(self, part: KafkaSlice, batch_size: int) -> Iterator[tuple[int, list[bytes]]]:
        """(first offset, values) runs of consecutive offsets, up to `batch_size` each,
        covering [part.start, part.end) but for the offsets Kafka has no record at."""
        self._consumer.assign([TopicPartition(part.topic, part.partition, part.start)])
        self.last_error = None
        expected = part.start
        deadline = time.monotonic() + _SILENCE_S
        try:
            while expected < part.end:
                with _collector_paused():
                    runs, done = self._next_batch(part, expected, batch_size)
                for first, values in runs:
                    yield first, values
                    expected = first + len(values)
                if done:
                    return
                if runs:
                    deadline = time.monotonic() + _SILENCE_S
                elif _beyond_retry(self.last_error) or time.monotonic() > deadline:
                    why = self.last_error or "no records came within the timeout"
                    raise _unreadable(part, expected, why)
        finally:
            self._consumer.unassign()

    def _next_batch(
        self, part: KafkaSlice, expected: int, batch_size: int
    ) -> tuple[list[tuple[int, list[bytes]]], bool]:
        """The runs of the next records inside the slice, and whether the slice is
        done: a record past its end came, or Kafka said the partition ends at or
        past it (transaction markers may follow the last record). An error record
        (a corrupt batch, an offset the broker no longer holds) is a one-line
        InputError naming its offset."""
        # No more than the slice still holds: consume() waits for the count.
        wanted = max(1, min(batch_size, part.end - expected))
        try:
            messages = self._consumer.consume(wanted, timeout=_WAIT_S)
        except KafkaException as exc:
            raise _unreadable(part, expected, exc.args[0]) from exc
        done = False
        events = [m for m in messages if m.error() is not None]
        for event in events:
            if event.error().code() != KafkaError._PARTITION_EOF:
                offset = event.offset()
                at = offset if offset is not None and offset >= 0 else expected
                raise _unreadable(part, at, event.error())
            done = done or event.offset() >= part.end
        records = [m for m in messages if m.error() is None] if events else messages
        if records and records[-1].offset() >= part.end:
            records = [m for m in records if m.offset() < part.end]
            done = True
        return (list(_runs(records)) if records else []), done


def _beyond_retry(error: KafkaError | None) -> bool:
    """An error waiting will not mend (the topic or partition went away, access
    refused, a fatal client error), unlike a broker that may come back."""
    return error is not None and (error.fatal() or error.code() in _GONE)


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Without the cyclic collector: a batch is thousands of new Message objects,
    which Python's collector tracks, and its passes over them cost as much as
    making them (0.3 of 0.6 s of CPU per 300,000 records, measured). They hold
    no cycles and are freed by reference counting before the collector is back."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _unreadable(part: KafkaSlice, offset: int, why: object) -> InputError:
    text = why.str() if isinstance(why, KafkaError) else str(why)
    return InputError(
        f"cannot read Kafka topic {part.topic} partition {part.partition} at offset {offset} "
        f"(slice {part.start}..{part.end - 1} of {part.bootstrap}): {text}"
    )


def _runs(messages: list[Message]) -> Iterator[tuple[int, list[bytes]]]:
    """Split at gaps in the offsets: (first offset, values) of each consecutive run.
    A tombstone (no value) is an empty line, rejected downstream with its reason."""
    first, last = messages[0].offset(), messages[-1].offset()
    # map() over the method and all() keep the per-record work in C: 110 + 40 ns a
    # record, where a comprehension and `None in` took 180 + 100 (measured).
    values = list(map(Message.value, messages))
    if not all(values):  # some None (or b"", which stays b"")
        values = [v or b"" for v in values]
    if last - first + 1 == len(messages):  # the usual case: no gap, no per-record work
        yield first, values
        return
    offsets = [m.offset() for m in messages]
    start = 0
    for index in range(1, len(offsets) + 1):
        if index == len(offsets) or offsets[index] != offsets[index - 1] + 1:
            yield offsets[start], values[start:index]
            start = index


def commit_offsets(bootstrap: str, group: str, slices: list[KafkaSlice]) -> None:
    """Tell Kafka the group has consumed up to each slice's end."""
    if not slices:
        return
    consumer = _consumer(bootstrap, group)
    try:
        _while_coordinator_settles(
            lambda: consumer.commit(
                offsets=[TopicPartition(s.topic, s.partition, s.end) for s in slices],
                asynchronous=False,
            )
        )
    except KafkaException as exc:
        raise InputError(
            f"the run is stored, but committing the offsets of group {group} to Kafka at "
            f"{bootstrap} failed ({exc.args[0]}); the next run repairs them from the ledger"
        ) from exc
    finally:
        consumer.close()
