"""Per-minute live figures from the event stream, with Beam state and timers.

    KafkaPoll ─ParseLiveFn─▶ ((site, minute), rows)           parse/validate (parse.py), GIVT
                 ─DeduplicateInMinuteFn─▶ first copies      state: ids of the minute
                 ─carry_devices─▶ own rows + devices carried to the next 4 minutes
                 ─MinuteFiguresFn─▶ SiteMinute, ChannelMinute rows

The event-time window of a figure is its minute (`floor(ts / 60000)`), one key
per (site, minute). A minute's state lives until the watermark passes its end
plus the allowed lateness (and a margin): an event timer clears it, so memory
holds a few minutes of events whatever the stream's length.

Lateness is judged per record, from its Kafka timestamp (when ingest sent it):
an event counts in the live figures when it was sent at most `lateness_ms`
after the end of its minute; later ones are left to the batch. Judged so, the
verdict is the same on a replay after a restart, whatever the watermark then.

Each write is the minute's whole state, versioned by the number of events in it
(schemas/clickhouse/0010_live.sql): state only grows, so a rewrite after late
data or a restart supersedes, and a replay that saw fewer events never does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.coders import PickleCoder
from apache_beam.metrics import Metrics
from apache_beam.transforms import userstate
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.utils.timestamp import Timestamp

from pressmeter.calendar import LocalCalendar
from pressmeter.pipelines.coders import ArrowTableCoder
from pressmeter.pipelines.ivt import DATACENTER, givt_datacenter, judge_ivt
from pressmeter.pipelines.live.kafka_stream import KafkaPoll, KafkaRecords
from pressmeter.pipelines.live.timing import ACTIVE_MINUTES, MINUTE_MS, LiveTiming
from pressmeter.pipelines.parse import EventParser, LineBatch

__all__ = [
    "LIVE_ROWS",
    "ChannelMinute",
    "DeduplicateInMinuteFn",
    "MinuteFiguresFn",
    "ParseLiveFn",
    "SiteMinute",
    "carry_devices",
    "minute_figures",
]

PLAY_CAP_MS = 60_000  # docs/standard.md §3 play_ms
PAGE_VIEW, ENGAGEMENT, MEDIA = "page_view", "engagement", "media"
READER, VIEWER = 1, 2

# `ip_class` as its code in the stored enum (0002_events.sql), which ivt.py's rules read.
IP_CLASS_CODES = {"residential": 1, "datacenter": DATACENTER, "unknown": 3}
# One row per kept event, what the live figures need.
LIVE_ROWS = pa.schema(
    [
        ("event_id", pa.string()),
        ("device_id", pa.string()),
        ("ts", pa.int64()),
        ("type", pa.string()),
        ("ua_ivt", pa.uint8()),  # GIVT-UA, from parse.py
        ("ip_class", pa.uint8()),  # the stored enum's code (0002_events.sql)
        ("value_ms", pa.uint32()),
        ("play_id", pa.string()),
        ("channel_id", pa.string()),
    ]
)
# Devices carried into the next minutes' "active in the last 5 minutes".
# One row per device and role, with the number of its events (for the version).
CARRIED_ROWS = pa.schema([("device_id", pa.string()), ("role", pa.uint8()), ("events", pa.int64())])


@dataclass(frozen=True)
class SiteMinute:
    """An outlet's figures for one minute; `version` counts the events behind them."""

    site_id: str
    minute_ms: int
    page_views: int
    play_ms: int
    readers: int
    viewers: int
    concurrent_plays: int
    ivt_events: int
    version: int


@dataclass(frozen=True)
class ChannelMinute:
    """A TV or radio channel's figures for one minute."""

    site_id: str
    channel_id: str
    minute_ms: int
    concurrent_plays: int
    play_ms: int
    version: int


class _Extras(msgspec.Struct):
    """Fields the live figures need beyond parse.py's compact row."""

    play_id: str = ""
    channel_id: str = ""


class ParseLiveFn(beam.DoFn):
    """KafkaPoll → ((site_id, minute), rows) of valid events sent in time.

    Validation, the reject reasons and GIVT-UA are parse.py's `EventParser`, as
    in the batch; rejected events are the batch's to store (it reads the same
    topic), here they are only counted.
    """

    def __init__(self, zone: str, timing: LiveTiming) -> None:
        self.zone = zone
        self.timing = timing
        self.rejected = Metrics.counter("live", "rejected")
        self.too_late = Metrics.counter("live", "too_late")

    def setup(self) -> None:
        self._parser = EventParser(self.zone)
        self._extras = msgspec.json.Decoder(_Extras)

    def process(self, poll: KafkaPoll) -> Iterator[tuple[tuple[str, int], pa.Table]]:
        parts = [self._in_time(records) for records in poll.batches]
        sites = [site for site, _ in parts]
        rows = pa.concat_tables([table for _, table in parts])
        yield from split_by_minute(pa.chunked_array(sites, pa.string()), rows)

    def _in_time(self, records: KafkaRecords) -> tuple[pa.Array, pa.Table]:
        """The site ids and rows of a partition's valid records sent in time."""
        batch = LineBatch(records.partition, f"p{records.partition}", records.first_offset, [])
        batch.lines.extend(records.values)
        kept, rejected = self._parser.parse(batch)
        self.rejected.inc(rejected.num_rows)
        index = (kept["position"].to_numpy() - records.first_offset).astype(np.int64)
        minute = kept["ts"].to_numpy() // MINUTE_MS
        in_time = records.record_ms[index] <= (minute + 1) * MINUTE_MS + self.timing.lateness_ms
        self.too_late.inc(int((~in_time).sum()))
        rows = self._rows(kept, [records.values[i] for i in index]).filter(pa.array(in_time))
        return kept["site_id"].filter(pa.array(in_time)).cast(pa.string()).combine_chunks(), rows

    def _rows(self, kept: pa.Table, lines: list[bytes]) -> pa.Table:
        extras = [self._extras.decode(line) for line in lines]
        ip_class = kept["ip_class"].cast(pa.string()).to_numpy(zero_copy_only=False)
        return pa.table(
            {
                "event_id": kept["event_id"],
                "device_id": kept["device_id"],
                "ts": kept["ts"],
                "type": kept["type"].cast(pa.string()),
                "ua_ivt": kept["ua_ivt"],
                "ip_class": np.vectorize(IP_CLASS_CODES.get, otypes=[np.uint8])(ip_class),
                "value_ms": kept["value_ms"],
                "play_id": [e.play_id for e in extras],
                "channel_id": [e.channel_id for e in extras],
            },
            schema=LIVE_ROWS,
        )


def split_by_minute(
    sites: pa.ChunkedArray, rows: pa.Table
) -> Iterator[tuple[tuple[str, int], pa.Table]]:
    """Rows grouped by (site, minute of ts), one element per group. Groups keep
    their batch's timestamp (its oldest record's Kafka time), not the minute's:
    the watermark then waits for them (see kafka_stream._stamp)."""
    if not rows.num_rows:
        return
    minute = rows["ts"].to_numpy() // MINUTE_MS
    site = sites.cast(pa.string()).to_numpy(zero_copy_only=False)
    keys, inverse = np.unique(np.rec.fromarrays([site, minute]), return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(len(keys) + 1))
    for number, (site_id, minute_number) in enumerate(keys):
        part = rows.take(pa.array(order[bounds[number] : bounds[number + 1]]))
        yield (str(site_id), int(minute_number)), part


def _expiry(minute: int, timing: LiveTiming) -> Timestamp:
    return Timestamp(micros=((minute + 1) * MINUTE_MS + timing.state_ms) * 1000)


class DeduplicateInMinuteFn(beam.DoFn):
    """Drops repeated copies (same site and event_id) within a minute's live state.

    Copies of one event carry its `ts`, so they meet under the same key. The
    ids seen are a bag per (site, minute), cleared by an event-time timer once
    the minute can no longer change: memory is bounded by the live horizon, not
    by the stream. (The batch dedups across 7 days; live figures are preliminary.)
    """

    SEEN = userstate.BagStateSpec("seen", PickleCoder())
    EXPIRE = userstate.TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, timing: LiveTiming) -> None:
        self.timing = timing
        self.duplicates = Metrics.counter("live", "duplicates")

    def process(
        self,
        element: tuple[tuple[str, int], pa.Table],
        seen: userstate.BagRuntimeState = beam.DoFn.StateParam(SEEN),
        expire: userstate.RuntimeTimer = beam.DoFn.TimerParam(EXPIRE),
    ) -> Iterator[tuple[tuple[str, int], pa.Table]]:
        key, rows = element
        known = set().union(*seen.read())
        ids = rows["event_id"].to_pylist()
        first = []
        for index, event_id in enumerate(ids):
            if event_id not in known:
                known.add(event_id)
                first.append(index)
        self.duplicates.inc(len(ids) - len(first))
        if not first:
            return
        seen.add([ids[i] for i in first])
        expire.set(_expiry(key[1], self.timing))
        yield key, rows if len(first) == len(ids) else rows.take(pa.array(first))

    @userstate.on_timer(EXPIRE)
    def forget(self, seen: userstate.BagRuntimeState = beam.DoFn.StateParam(SEEN)) -> None:
        seen.clear()


def carry_devices(
    element: tuple[tuple[str, int], pa.Table],
) -> Iterator[tuple[tuple[str, int], tuple[str, pa.Table]]]:
    """A minute's rows to their own key, and their active devices (GIVT removed)
    to the keys of the next 4 minutes, where they count as readers or viewers
    active in the last 5 minutes."""
    (site_id, minute), rows = element
    yield (site_id, minute), ("own", rows)
    givt = rows["ua_ivt"].to_numpy().astype(bool) | givt_datacenter(rows["ip_class"].to_numpy())
    kept = rows.filter(pa.array(~givt))
    if not kept.num_rows:
        return
    role = np.where(kept["type"].to_numpy(zero_copy_only=False) == MEDIA, VIEWER, READER)
    devices = (
        pa.table({"device_id": kept["device_id"], "role": role.astype(np.uint8)})
        .group_by(["device_id", "role"])
        .aggregate([([], "count_all")])
        .rename_columns(["device_id", "role", "events"])
    )
    for later in range(1, ACTIVE_MINUTES):
        yield (site_id, minute + later), ("carried", devices)


class MinuteFiguresFn(beam.DoFn):
    """(site, minute) → its figures, written soon after each change.

    State: the minute's own rows and the devices carried from the 4 minutes
    before. A change is written at once (each element is a batch), unless the
    minute has not begun on the wall clock (a carried device makes no figure
    for a minute still to come); then a processing-time timer writes it when
    the minute begins. (Writing at most every few hundred ms, with a timer for
    the last change, once left a change unwritten for over 90 s in a test on
    Prism: the timer did not fire.)
    An event-time timer makes the final write and clears the state once the
    minute can no longer change.
    """

    OWN = userstate.BagStateSpec("own", ArrowTableCoder())
    CARRIED = userstate.BagStateSpec("carried", ArrowTableCoder())
    DIRTY = userstate.ReadModifyWriteStateSpec("dirty", PickleCoder())
    FLUSH = userstate.TimerSpec("flush", TimeDomain.REAL_TIME)
    EXPIRE = userstate.TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, zone: str, timing: LiveTiming) -> None:
        self.zone = zone
        self.timing = timing

    def setup(self) -> None:
        self._calendar = LocalCalendar(self.zone)

    def _figures(
        self,
        key: tuple[str, int],
        own: userstate.BagRuntimeState,
        carried: userstate.BagRuntimeState,
    ) -> Iterator[SiteMinute | ChannelMinute]:
        return minute_figures(
            key, compact(own, LIVE_ROWS), compact(carried, CARRIED_ROWS), self._calendar
        )

    def process(
        self,
        element: tuple[tuple[str, int], tuple[str, pa.Table]],
        own: userstate.BagRuntimeState = beam.DoFn.StateParam(OWN),
        carried: userstate.BagRuntimeState = beam.DoFn.StateParam(CARRIED),
        dirty: userstate.ReadModifyWriteRuntimeState = beam.DoFn.StateParam(DIRTY),
        flush: userstate.RuntimeTimer = beam.DoFn.TimerParam(FLUSH),
        expire: userstate.RuntimeTimer = beam.DoFn.TimerParam(EXPIRE),
    ) -> Iterator[SiteMinute | ChannelMinute]:
        key, (kind, rows) = element
        (own if kind == "own" else carried).add(rows)
        now_ms = time.time() * 1000
        if now_ms >= key[1] * MINUTE_MS:
            dirty.write(False)
            yield from self._figures(key, own, carried)
        elif not dirty.read():
            dirty.write(True)
            due_ms = max(now_ms, key[1] * MINUTE_MS) + self.timing.flush_ms
            flush.set(Timestamp(micros=int(due_ms * 1000)))
        expire.set(_expiry(key[1], self.timing))

    @userstate.on_timer(FLUSH)
    def write(
        self,
        key: tuple[str, int] = beam.DoFn.KeyParam,
        own: userstate.BagRuntimeState = beam.DoFn.StateParam(OWN),
        carried: userstate.BagRuntimeState = beam.DoFn.StateParam(CARRIED),
        dirty: userstate.ReadModifyWriteRuntimeState = beam.DoFn.StateParam(DIRTY),
    ) -> Iterator[SiteMinute | ChannelMinute]:
        if not dirty.read():  # written by process() since the timer was set
            return
        dirty.write(False)
        yield from self._figures(key, own, carried)

    @userstate.on_timer(EXPIRE)
    def close(
        self,
        key: tuple[str, int] = beam.DoFn.KeyParam,
        own: userstate.BagRuntimeState = beam.DoFn.StateParam(OWN),
        carried: userstate.BagRuntimeState = beam.DoFn.StateParam(CARRIED),
        dirty: userstate.ReadModifyWriteRuntimeState = beam.DoFn.StateParam(DIRTY),
        flush: userstate.RuntimeTimer = beam.DoFn.TimerParam(FLUSH),
    ) -> Iterator[SiteMinute | ChannelMinute]:
        if dirty.read():
            yield from self._figures(key, own, carried)
        flush.clear()
        for state in (own, carried, dirty):
            state.clear()


def compact(bag: userstate.BagRuntimeState, schema: pa.Schema) -> pa.Table:
    """A bag of tables read as one table, and stored back as one: later reads
    decode one part, not one per batch since the minute began. Carried devices
    are merged per (device, role), their event counts summed."""
    parts = list(bag.read())
    table = pa.concat_tables(parts) if parts else schema.empty_table()
    if schema is CARRIED_ROWS and len(parts) > 1:
        table = table.group_by(["device_id", "role"]).aggregate([("events", "sum")])
        table = table.rename_columns(["device_id", "role", "events"]).select(schema.names)
    if len(parts) > 1:
        bag.clear()
        bag.add(table)
    return table


def _distinct(*columns: pa.ChunkedArray) -> int:
    return pc.count_distinct(pa.chunked_array(columns, pa.string())).as_py()


def minute_figures(
    key: tuple[str, int], own: pa.Table, carried: pa.Table, calendar: LocalCalendar
) -> Iterator[SiteMinute | ChannelMinute]:
    """The figures of one site and minute from its events and the devices carried
    from the 4 minutes before (docs/standard.md §3 caps; IVT by ivt.py's rules)."""
    site_id, minute = key
    own = own.sort_by([("device_id", "ascending"), ("ts", "ascending")])
    kind = own["type"].to_numpy(zero_copy_only=False)
    counted = _counted(own, kind, calendar)
    media = counted & (kind == MEDIA)
    reading = counted & (kind != MEDIA)
    played = np.minimum(own["value_ms"].to_numpy(), PLAY_CAP_MS).astype(np.int64)
    devices = own["device_id"]
    plays = own["play_id"].to_numpy(zero_copy_only=False)
    carried_role = carried["role"].to_numpy()
    carried_readers = carried["device_id"].filter(pa.array(carried_role == READER))
    carried_viewers = carried["device_id"].filter(pa.array(carried_role == VIEWER))
    yield SiteMinute(
        site_id=site_id,
        minute_ms=minute * MINUTE_MS,
        page_views=int((counted & (kind == PAGE_VIEW)).sum()),
        play_ms=int(played[media].sum()),
        readers=_distinct(*devices.filter(pa.array(reading)).chunks, *carried_readers.chunks),
        viewers=_distinct(*devices.filter(pa.array(media)).chunks, *carried_viewers.chunks),
        concurrent_plays=len(set(plays[media])),
        ivt_events=int((~counted).sum()),
        version=own.num_rows + int(pc.sum(carried["events"]).as_py() or 0),
    )
    yield from _channel_minutes(site_id, minute, own, kind == MEDIA, media, played, plays)


def _channel_minutes(
    site_id: str,
    minute: int,
    own: pa.Table,
    is_media: np.ndarray,
    media: np.ndarray,
    played: np.ndarray,
    plays: np.ndarray,
) -> Iterator[ChannelMinute]:
    """A row per channel of the minute's media events (`media`: those counted),
    grouped once: a minute may have many channels, and is figured again at each
    change."""
    channels = own["channel_id"].to_numpy(zero_copy_only=False)[is_media]
    names, channel = np.unique(channels, return_inverse=True)
    counted = media[is_media]
    play_ms = np.bincount(channel[counted], played[is_media][counted], len(names))
    pairs = np.unique(np.rec.fromarrays([channel[counted], plays[is_media][counted]]))
    concurrent = np.bincount(pairs["f0"].astype(np.int64), minlength=len(names))
    versions = np.bincount(channel, minlength=len(names))
    for number, name in enumerate(names):
        if name:
            yield ChannelMinute(
                site_id=site_id,
                channel_id=str(name),
                minute_ms=minute * MINUTE_MS,
                concurrent_plays=int(concurrent[number]),
                play_ms=int(play_ms[number]),
                version=int(versions[number]),
            )


def _counted(own: pa.Table, kind: np.ndarray, calendar: LocalCalendar) -> np.ndarray:
    """Not IVT by ivt.py's `judge_ivt` (rows sorted by device, then ts). SIVT-RATE
    sees the minute's own events: a device over the rate in this minute is IVT
    here; its other minutes of the day are for the batch to correct."""
    _, device = np.unique(own["device_id"].to_numpy(zero_copy_only=False), return_inverse=True)
    ts = own["ts"].to_numpy()
    verdicts = judge_ivt(
        own["ua_ivt"].to_numpy(),
        own["ip_class"].to_numpy(),
        device,
        ts,
        calendar.days(ts),
        kind == PAGE_VIEW,
        calendar,
    )
    return verdicts.counted
