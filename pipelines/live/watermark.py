"""The Kafka source's watermark: the minimum over the topic's partitions.

Each partition's own watermark follows the Kafka timestamps of its records:
the oldest record of the last batch read (see kafka_stream._stamp). A partition
read to its end is idle: its watermark then moves on with the wall clock from
its newest record, so a quiet partition does not hold the live figures back;
one that has a backlog but gave no record yet holds them back until it does.

All of it is the estimator's state, which Beam hands on with the restriction
at every checkpoint. It must not live in the DoFn instance: Prism resumes the
element on whichever instance of the reading step is free (under load it runs
several), and an instance that had not read a partition itself once took the
wall clock for that partition's watermark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import WatermarkEstimatorProvider
from apache_beam.utils.timestamp import Timestamp

__all__ = ["IDLE_LAG_MS", "PartitionClock", "TopicClock", "TopicWatermark", "TopicWatermarks"]

# An idle partition's watermark trails the wall clock by this much: a record
# sent just now may still be on its way from the broker.
IDLE_LAG_MS = 2_000


@dataclass(frozen=True)
class PartitionClock:
    """A partition's watermark (ms, None until known), its newest record's Kafka
    time and the wall-clock time that record was read (None before any)."""

    watermark_ms: int | None = None
    newest_ms: int | None = None
    read_at_ms: int = 0


@dataclass(frozen=True)
class TopicClock:
    """The estimator's state: the watermark reported (ms) and each partition's clock."""

    watermark_ms: int | None
    partitions: tuple[tuple[int, PartitionClock], ...]


def now_ms() -> int:
    return int(time.time() * 1000)


def _later(a: int | None, b: int) -> int:
    return b if a is None else max(a, b)


class TopicWatermark(ManualWatermarkEstimator):
    """Told by the reading DoFn what it read (`records_read`) and which partitions
    are idle (`idle`); `advance` then moves the watermark to the slowest partition's.
    Never moved back."""

    def __init__(self, clock: TopicClock) -> None:
        known = clock.watermark_ms
        super().__init__(None if known is None else Timestamp(micros=known * 1000))
        self._partitions = dict(clock.partitions)

    def records_read(self, partition: int, oldest_ms: int, newest_ms: int) -> None:
        """A batch of the partition, its records sent from `oldest_ms` to `newest_ms`,
        was read just now."""
        clock = self._partitions[partition]
        clock = replace(clock, watermark_ms=_later(clock.watermark_ms, oldest_ms))
        if clock.newest_ms is None or newest_ms > clock.newest_ms:
            clock = replace(clock, newest_ms=newest_ms, read_at_ms=now_ms())
        self._partitions[partition] = clock

    def idle(self, partition: int) -> None:
        """The partition is read to its end: its watermark moves on from its newest
        record by the wall-clock time since it was read (less the lag); a partition
        never read follows the wall clock."""
        clock = self._partitions[partition]
        if clock.newest_ms is None:
            target_ms = now_ms() - IDLE_LAG_MS
        else:
            target_ms = clock.newest_ms + max(0, now_ms() - clock.read_at_ms - IDLE_LAG_MS)
        self._partitions[partition] = replace(
            clock, watermark_ms=_later(clock.watermark_ms, target_ms)
        )

    def advance(self) -> None:
        """The watermark to the slowest partition's, once every partition has one."""
        marks = [c.watermark_ms for c in self._partitions.values() if c.watermark_ms is not None]
        if len(marks) < len(self._partitions):
            return
        target = Timestamp(micros=min(marks) * 1000)
        current = self.current_watermark()
        if current is None or target > current:
            self.set_watermark(target)

    def get_estimator_state(self) -> TopicClock:
        current = self.current_watermark()
        watermark_ms = None if current is None else current.micros // 1000
        return TopicClock(watermark_ms, tuple(sorted(self._partitions.items())))


class TopicWatermarks(WatermarkEstimatorProvider):
    """A TopicWatermark for the element's partitions, starting with nothing read."""

    def initial_estimator_state(self, element: Any, restriction: Any) -> TopicClock:
        return TopicClock(None, tuple((p, PartitionClock()) for p, _ in element.offsets))

    def create_watermark_estimator(self, estimator_state: TopicClock) -> TopicWatermark:
        return TopicWatermark(estimator_state)
