"""The live pipeline's two side effects: figures to ClickHouse, then positions to Kafka.

Order matters for restarts. A record's offset is committed to the consumer
group only once the watermark at the commit step has passed the record's time
plus the live horizon; that step is fed by the figure writer too, so by then
every minute the record could change has had its final write stored. A job
stopped or killed at any point resumes from that committed position: minutes
it replays are rewritten whole (same events, same version) and never add up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
from apache_beam.coders import PickleCoder
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Timestamp

from pressmeter.pipelines.live.figures import ChannelMinute, SiteMinute
from pressmeter.pipelines.live.kafka_stream import KafkaPoll, consumer

__all__ = [
    "CHANNEL_TABLE",
    "SITE_TABLE",
    "CommitPositionsFn",
    "Position",
    "WriteLiveFiguresFn",
    "positions_of",
]

SITE_TABLE = "live_site_minutes"
CHANNEL_TABLE = "live_channel_minutes"


@dataclass(frozen=True)
class Position:
    """Records of a partition before `next_offset`, the newest sent at `record_ms`."""

    next_offset: int
    record_ms: int


def positions_of(poll: KafkaPoll) -> Iterator[tuple[int, Position]]:
    """Positions within each partition's batch, one per minute of Kafka time, so a
    backlog read in one poll is still committed minute by minute as its figures
    become final."""
    for records in poll.batches:
        minutes = records.record_ms // 60_000
        ends = np.flatnonzero(np.append(minutes[1:] != minutes[:-1], True))
        newest = np.maximum.accumulate(records.record_ms)
        for end in ends:
            position = Position(records.first_offset + int(end) + 1, int(newest[end]))
            yield records.partition, position


def _site_rows(rows: list[SiteMinute], written_ms: int) -> pa.Table:
    return pa.table(
        {
            "site_id": [r.site_id for r in rows],
            "minute": pa.array([r.minute_ms // 1000 for r in rows], pa.timestamp("s", "UTC")),
            "page_views": pa.array([r.page_views for r in rows], pa.uint32()),
            "play_ms": pa.array([r.play_ms for r in rows], pa.uint64()),
            "readers": pa.array([r.readers for r in rows], pa.uint32()),
            "viewers": pa.array([r.viewers for r in rows], pa.uint32()),
            "concurrent_plays": pa.array([r.concurrent_plays for r in rows], pa.uint32()),
            "ivt_events": pa.array([r.ivt_events for r in rows], pa.uint32()),
            "version": pa.array([r.version for r in rows], pa.uint64()),
            "written_ms": pa.array([written_ms] * len(rows), pa.uint64()),
        }
    )


def _channel_rows(rows: list[ChannelMinute], written_ms: int) -> pa.Table:
    return pa.table(
        {
            "minute": pa.array([r.minute_ms // 1000 for r in rows], pa.timestamp("s", "UTC")),
            "site_id": [r.site_id for r in rows],
            "channel_id": [r.channel_id for r in rows],
            "concurrent_plays": pa.array([r.concurrent_plays for r in rows], pa.uint32()),
            "play_ms": pa.array([r.play_ms for r in rows], pa.uint64()),
            "version": pa.array([r.version for r in rows], pa.uint64()),
            "written_ms": pa.array([written_ms] * len(rows), pa.uint64()),
        }
    )


def _newest(rows: list[Any], key: Any) -> list[Any]:
    """One row per minute key: the highest version seen in the bundle."""
    best: dict[Any, Any] = {}
    for row in rows:
        if key(row) not in best or row.version > best[key(row)].version:
            best[key(row)] = row
    return list(best.values())


class WriteLiveFiguresFn(beam.DoFn):
    """Stores a bundle's figures in one insert per table; outputs nothing, but its
    (empty) output's watermark tells the commit step what is stored."""

    def __init__(self, store_url: str) -> None:
        self.store_url = store_url

    def setup(self) -> None:
        from pressmeter.store import open_store

        self._store = open_store(self.store_url)

    def start_bundle(self) -> None:
        self._sites: list[SiteMinute] = []
        self._channels: list[ChannelMinute] = []

    def process(self, row: SiteMinute | ChannelMinute) -> Iterator[tuple[int, Position]]:
        (self._sites if isinstance(row, SiteMinute) else self._channels).append(row)
        return iter(())

    def finish_bundle(self) -> None:
        written_ms = int(time.time() * 1000)
        sites = _newest(self._sites, lambda r: (r.site_id, r.minute_ms))
        channels = _newest(self._channels, lambda r: (r.site_id, r.channel_id, r.minute_ms))
        if sites:
            self._store.insert(SITE_TABLE, _site_rows(sites, written_ms))
        if channels:
            self._store.insert(CHANNEL_TABLE, _channel_rows(channels, written_ms))


class CommitPositionsFn(beam.DoFn):
    """Per partition: commits to the consumer group the offsets whose records can
    no longer change a figure, once the watermark says those figures are stored."""

    PENDING = userstate.BagStateSpec("pending", PickleCoder())
    DUE = userstate.TimerSpec("due", TimeDomain.WATERMARK)
    DUE_AT = userstate.ReadModifyWriteStateSpec("due_at", PickleCoder())

    def __init__(self, bootstrap: str, topic: str, group: str, horizon_ms: int) -> None:
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.horizon_ms = horizon_ms

    def setup(self) -> None:
        self._client = consumer(self.bootstrap, self.group)

    def teardown(self) -> None:
        self._client.close()

    def process(
        self,
        element: tuple[int, Position],
        pending: userstate.BagRuntimeState = beam.DoFn.StateParam(PENDING),
        due: userstate.RuntimeTimer = beam.DoFn.TimerParam(DUE),
        due_at: userstate.ReadModifyWriteRuntimeState = beam.DoFn.StateParam(DUE_AT),
    ) -> None:
        _, position = element
        pending.add(position)
        if due_at.read() is None:  # the first pending position sets the clock
            self._wait_for(position, due, due_at)

    def _wait_for(
        self,
        position: Position,
        due: userstate.RuntimeTimer,
        due_at: userstate.ReadModifyWriteRuntimeState,
    ) -> None:
        when = position.record_ms + self.horizon_ms
        due_at.write(when)
        due.set(Timestamp(micros=when * 1000))

    @userstate.on_timer(DUE)
    def commit(
        self,
        partition: int = beam.DoFn.KeyParam,
        fired: Timestamp = beam.DoFn.TimestampParam,
        pending: userstate.BagRuntimeState = beam.DoFn.StateParam(PENDING),
        due: userstate.RuntimeTimer = beam.DoFn.TimerParam(DUE),
        due_at: userstate.ReadModifyWriteRuntimeState = beam.DoFn.StateParam(DUE_AT),
    ) -> None:
        from confluent_kafka import TopicPartition

        positions = sorted(pending.read(), key=lambda p: p.next_offset)
        now_ms = fired.micros // 1000
        done = 0
        while done < len(positions) and positions[done].record_ms + self.horizon_ms <= now_ms:
            done += 1
        if done:
            offset = TopicPartition(self.topic, partition, positions[done - 1].next_offset)
            self._client.commit(offsets=[offset], asynchronous=False)
        pending.clear()
        rest = positions[done:]
        for position in rest:
            pending.add(position)
        due_at.clear()
        if rest:  # the oldest offset not yet due holds back all after it
            self._wait_for(rest[0], due, due_at)
