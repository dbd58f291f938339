"""Per-minute live figures from the event stream, with Beam state and timers.

    KafkaPoll ─ParseLiveFn─▶ ((site, minute), rows)           parse/validate (parse.py), GIVT
                 ─DeduplicateInMinuteFn─▶ first copies      state: ids of the minute
                 ─carry_devices─▶ the rows summarized per device (figures.py), and
                                  the active devices carried to the next 4 minutes
                 ─MinuteFiguresFn─▶ SiteMinute, ChannelMinute rows   state: those summaries

The event-time window of a figure is its minute (`floor(ts / 60000)`), one key
per (site, minute). A minute's state lives until the watermark passes its end
plus the allowed lateness (and a margin): an event timer clears it, so memory
holds a few minutes of events whatever the stream's length.

Lateness is judged per record, from its Kafka timestamp (when ingest sent it):
an event counts in the live figures when it was sent at most `lateness_ms`
after the end of its minute; later ones are left to the batch. Judged so, the
verdict is the same on a replay after a restart, whatever the watermark then.

Each write is the minute's whole figures, versioned by the number of events in it
(schemas/clickhouse/0010_live.sql): state only grows, so a rewrite after late
data or a restart supersedes, and a replay that saw fewer events never does.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

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

from pressmeter.pipelines.coders import ArrowTableCoder
from pressmeter.pipelines.ivt import DATACENTER
from pressmeter.pipelines.live.figures import (
    CARRIED_ROWS,
    DEVICE_ROWS,
    LIVE_ROWS,
    ChannelMinute,
    SiteMinute,
    carried_devices,
    merge_rows,
    minute_figures,
    summarize_devices,
)
from pressmeter.pipelines.live.kafka_stream import KafkaPoll
from pressmeter.pipelines.live.timing import ACTIVE_MINUTES, MINUTE_MS, LiveTiming
from pressmeter.pipelines.parse import EventParser, LineBatch

__all__ = [
    "DeduplicateInMinuteFn",
    "MinuteFiguresFn",
    "ParseLiveFn",
    "carry_devices",
    "first_copies",
]

# `ip_class` as its code in the stored enum (0002_events.sql), which ivt.py's rules read.
IP_CLASS_CODES = {"residential": 1, "datacenter": DATACENTER, "unknown": 3}
SEEN_IDS = pa.schema([("event_id", pa.string())])


class _Extras(msgspec.Struct):
    """Fields the live figures need beyond parse.py's compact row."""

    play_id: str = ""
    channel_id: str = ""


class ParseLiveFn(beam.DoFn):
    """KafkaPoll → ((site_id, minute), rows) of valid events sent in time.

    Validation, the reject reasons and GIVT-UA are parse.py's `EventParser`, as
    in the batch; rejected events are the batch's to store (it reads the same
    topic), here they are only counted. A poll's partitions are parsed at once:
    the parser's cost per call, not per line, dominated small batches.
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
        lines = [line for records in poll.batches for line in records.values]
        if not lines:
            return
        sent_ms = np.concatenate([records.record_ms for records in poll.batches])
        kept, rejected = self._parser.parse(LineBatch(0, "live", 0, lines))
        self.rejected.inc(rejected.num_rows)
        index = kept["position"].to_numpy().astype(np.int64)
        minute = kept["ts"].to_numpy() // MINUTE_MS
        in_time = pa.array(sent_ms[index] <= (minute + 1) * MINUTE_MS + self.timing.lateness_ms)
        self.too_late.inc(len(index) - pc.sum(in_time).as_py())
        rows = self._rows(kept, [lines[i] for i in index]).filter(in_time)
        yield from split_by_minute(kept["site_id"].filter(in_time), rows)

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


def first_copies(ids: pa.Array | pa.ChunkedArray, known: pa.Table) -> np.ndarray:
    """Indices, in order, of the rows whose id is neither in `known` nor earlier in `ids`."""
    numbered = pa.table({"event_id": ids, "row": np.arange(len(ids))})
    first = numbered.group_by("event_id", use_threads=False).aggregate([("row", "min")])
    new = pc.invert(pc.is_in(first["event_id"], value_set=known["event_id"]))
    return np.sort(first["row_min"].filter(new).to_numpy())


class DeduplicateInMinuteFn(beam.DoFn):
    """Drops repeated copies (same site and event_id) within a minute's live state.

    Copies of one event carry its `ts`, so they meet under the same key. The
    ids seen are a bag per (site, minute), cleared by an event-time timer once
    the minute can no longer change: memory is bounded by the live horizon, not
    by the stream. (The batch dedups across 7 days; live figures are preliminary.)
    """

    SEEN = userstate.BagStateSpec("seen", ArrowTableCoder())
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
        known = _compact(seen, SEEN_IDS)
        first = first_copies(rows["event_id"], known)
        self.duplicates.inc(rows.num_rows - len(first))
        if not len(first):
            return
        if len(first) < rows.num_rows:
            rows = rows.take(pa.array(first))
        seen.add(rows.select(["event_id"]))
        expire.set(_expiry(key[1], self.timing))
        yield key, rows

    @userstate.on_timer(EXPIRE)
    def forget(self, seen: userstate.BagRuntimeState = beam.DoFn.StateParam(SEEN)) -> None:
        seen.clear()


def carry_devices(
    element: tuple[tuple[str, int], pa.Table],
) -> Iterator[tuple[tuple[str, int], tuple[str, pa.Table]]]:
    """A minute's rows, summarized per device, to their own key, and their active
    devices to the keys of the next 4 minutes, where they count as readers or
    viewers active in the last 5 minutes."""
    (site_id, minute), rows = element
    devices = summarize_devices(rows)
    yield (site_id, minute), ("own", devices)
    carried = carried_devices(devices)
    if not carried.num_rows:
        return
    for later in range(1, ACTIVE_MINUTES):
        yield (site_id, minute + later), ("carried", carried)


class MinuteFiguresFn(beam.DoFn):
    """(site, minute) → its figures, written soon after each change.

    State: the minute's own events summarized per device (figures.DEVICE_ROWS)
    and the devices carried from the 4 minutes before. A change is written at
    once (each element is a batch), unless the minute has not begun on the wall
    clock (a carried device makes no figure for a minute still to come); then a
    processing-time timer writes it when the minute begins. (Writing at most
    every few hundred ms, with a timer for the last change, once left a change
    unwritten for over 90 s in a test on Prism: the timer did not fire.)
    An event-time timer makes the final write and clears the state once the
    minute can no longer change.
    """

    OWN = userstate.BagStateSpec("own", ArrowTableCoder())
    CARRIED = userstate.BagStateSpec("carried", ArrowTableCoder())
    DIRTY = userstate.ReadModifyWriteStateSpec("dirty", PickleCoder())
    FLUSH = userstate.TimerSpec("flush", TimeDomain.REAL_TIME)
    EXPIRE = userstate.TimerSpec("expire", TimeDomain.WATERMARK)

    def __init__(self, timing: LiveTiming) -> None:
        self.timing = timing

    @staticmethod
    def _figures(
        key: tuple[str, int],
        own: userstate.BagRuntimeState,
        carried: userstate.BagRuntimeState,
        channels: pa.Array | None = None,
    ) -> Iterator[SiteMinute | ChannelMinute]:
        devices, active = _compact(own, DEVICE_ROWS), _compact(carried, CARRIED_ROWS)
        return minute_figures(key, devices, active, channels)

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
            changed = _changed_channels(kind, rows, pending=bool(dirty.read()))
            dirty.write(False)
            yield from self._figures(key, own, carried, changed)
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


def _changed_channels(kind: str, rows: pa.Table, pending: bool) -> pa.Array | None:
    """The channels whose rows a change rewrites: all (None) while a write is
    pending, else the batch's own (carried devices change no channel row)."""
    if pending:
        return None
    return pc.unique(rows["channel_id"]) if kind == "own" else pa.array([], pa.string())


def _compact(bag: userstate.BagRuntimeState, schema: pa.Schema) -> pa.Table:
    """A bag of tables read as one table, and stored back as one, so later reads
    decode one part, not one per batch since the minute began. Summaries
    (figures.DEVICE_ROWS, CARRIED_ROWS) are merged per key, ids appended."""
    parts = list(bag.read())
    if len(parts) < 2:
        return parts[0] if parts else schema.empty_table()
    table = pa.concat_tables(parts) if schema is SEEN_IDS else merge_rows(parts, schema)
    bag.clear()
    bag.add(table)
    return table
