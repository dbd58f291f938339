"""A minute's live figures from per-device summaries (no Beam here: pure functions).

The live state of a (site, minute) is not its events but one row per device and
play: every figure of docs/live.md decomposes so (page views, play time and IVT
are sums over devices; readers, viewers and plays are distinct devices or plays;
SIVT-RATE is judged per device). A batch of events is summarized once, merged
into the minute's rows by summing, and the figures are read off the merged rows:
the work per batch follows the devices of the minute, not the square of its
events, as re-figuring every event of the minute at each change did.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pressmeter.pipelines.ivt import givt_datacenter, over_rate_limit
from pressmeter.pipelines.live.timing import MINUTE_MS

__all__ = [
    "CARRIED_ROWS",
    "DEVICE_ROWS",
    "LIVE_ROWS",
    "ChannelMinute",
    "SiteMinute",
    "carried_devices",
    "merge_rows",
    "minute_figures",
    "summarize_devices",
]

PLAY_CAP_MS = 60_000  # docs/standard.md §3 play_ms
PAGE_VIEW, MEDIA = "page_view", "media"
READER, VIEWER = 1, 2

# One row per kept event, what the live figures need (ParseLiveFn's output).
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
# A minute's events summarized per device and play: `play_id` and `channel_id`
# are '' for events other than media. "GIVT" is GIVT-UA or GIVT-DC, judged per
# event; SIVT-RATE is judged on the merged rows (it needs the whole minute).
_DEVICE_KEYS = ["device_id", "play_id", "channel_id"]
_DEVICE_SUMS = [
    "events",  # first copies, IVT or not: the figures' version
    "givt_events",
    "all_page_views",  # page views, GIVT or not: what SIVT-RATE counts
    "page_views",  # page views not GIVT
    "reading",  # page views and engagements not GIVT
    "media",  # media events not GIVT
    "play_ms",  # their played time, capped per event
    "media_events",  # media events, GIVT or not: a channel row's version
]
DEVICE_ROWS = pa.schema(
    [(name, pa.string()) for name in _DEVICE_KEYS] + [(name, pa.int64()) for name in _DEVICE_SUMS]
)
# Devices carried into the next minutes' "active in the last 5 minutes":
# one row per device and role, with the number of its events (for the version).
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


def _sum_per_key(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """DEVICE_ROWS or CARRIED_ROWS with one row per key, the counts summed."""
    keys = _DEVICE_KEYS if schema is DEVICE_ROWS else ["device_id", "role"]
    sums = [name for name in schema.names if name not in keys]
    merged = table.group_by(keys).aggregate([(name, "sum") for name in sums])
    return merged.rename_columns(keys + sums).select(schema.names)


def merge_rows(parts: list[pa.Table], schema: pa.Schema) -> pa.Table:
    """Summaries of one minute (DEVICE_ROWS or CARRIED_ROWS) as one."""
    if len(parts) < 2:
        return parts[0] if parts else schema.empty_table()
    return _sum_per_key(pa.concat_tables(parts), schema)


def summarize_devices(rows: pa.Table) -> pa.Table:
    """A batch of LIVE_ROWS → DEVICE_ROWS."""
    kind = rows["type"].to_numpy(zero_copy_only=False)
    is_media, is_view = kind == MEDIA, kind == PAGE_VIEW
    givt = rows["ua_ivt"].to_numpy().astype(bool) | givt_datacenter(rows["ip_class"].to_numpy())
    kept = ~givt
    played = np.minimum(rows["value_ms"].to_numpy(), PLAY_CAP_MS).astype(np.int64)
    media_only = pa.array(is_media)
    per_event = pa.table(
        {
            "device_id": rows["device_id"],
            "play_id": pc.if_else(media_only, rows["play_id"], ""),
            "channel_id": pc.if_else(media_only, rows["channel_id"], ""),
            "events": np.ones(rows.num_rows, np.int64),
            "givt_events": givt.astype(np.int64),
            "all_page_views": is_view.astype(np.int64),
            "page_views": (is_view & kept).astype(np.int64),
            "reading": (~is_media & kept).astype(np.int64),
            "media": (is_media & kept).astype(np.int64),
            "play_ms": np.where(is_media & kept, played, 0),
            "media_events": is_media.astype(np.int64),
        },
        schema=DEVICE_ROWS,
    )
    return _sum_per_key(per_event, DEVICE_ROWS)


def carried_devices(devices: pa.Table) -> pa.Table:
    """The minute's active devices (GIVT removed) as CARRIED_ROWS: readers for
    their page views and engagements, viewers for their media events."""
    roles = []
    for role, column in ((READER, "reading"), (VIEWER, "media")):
        active = devices.filter(pc.greater(devices[column], 0))
        roles.append(
            pa.table(
                {
                    "device_id": active["device_id"],
                    "role": np.full(active.num_rows, role, np.uint8),
                    "events": active[column],
                },
                schema=CARRIED_ROWS,
            )
        )
    return merge_rows(roles, CARRIED_ROWS)


def _sivt_rate_devices(devices: pa.Table) -> np.ndarray:
    """Rows whose device breaks SIVT-RATE in the minute (ivt.py's limit, docs/standard.md
    §2): live judges the minute's own events; the batch flags the whole local day."""
    per_device = devices.group_by("device_id").aggregate([("all_page_views", "sum")])
    counts = per_device["all_page_views_sum"].to_numpy()
    hot = per_device["device_id"].filter(pa.array(over_rate_limit(counts)))
    return pc.is_in(devices["device_id"], value_set=hot).to_numpy(zero_copy_only=False)


def _distinct(*columns: pa.ChunkedArray) -> int:
    chunks = [chunk for column in columns for chunk in column.chunks]
    return pc.count_distinct(pa.chunked_array(chunks, pa.string())).as_py()


def minute_figures(
    key: tuple[str, int],
    devices: pa.Table,
    carried: pa.Table,
    channels: pa.Array | None = None,
) -> Iterator[SiteMinute | ChannelMinute]:
    """The figures of one site and minute from its DEVICE_ROWS and the devices
    carried from the 4 minutes before (docs/live.md; docs/standard.md §3 caps):
    the site's row, and the rows of `channels` (all the minute's if None; a batch
    changes only its own channels, and a minute of a busy broadcaster has many)."""
    site_id, minute = key
    counted = ~_sivt_rate_devices(devices)
    column = {name: devices[name].to_numpy() for name in _DEVICE_SUMS}
    givt = column["givt_events"]
    role = carried["role"].to_numpy()
    ids = devices["device_id"]
    plays = devices["play_id"].filter(pa.array(counted & (column["media"] > 0)))
    yield SiteMinute(
        site_id=site_id,
        minute_ms=minute * MINUTE_MS,
        page_views=int(column["page_views"][counted].sum()),
        play_ms=int(column["play_ms"][counted].sum()),
        readers=_distinct(
            ids.filter(pa.array(counted & (column["reading"] > 0))),
            carried["device_id"].filter(pa.array(role == READER)),
        ),
        viewers=_distinct(
            ids.filter(pa.array(counted & (column["media"] > 0))),
            carried["device_id"].filter(pa.array(role == VIEWER)),
        ),
        concurrent_plays=_distinct(plays),
        ivt_events=int(givt.sum() + (column["events"] - givt)[~counted].sum()),
        version=int(column["events"].sum() + _column_sum(carried, "events")),
    )
    yield from _channel_minutes(site_id, minute, devices, counted, channels)


def _column_sum(table: pa.Table, name: str) -> int:
    return int(pc.sum(table[name]).as_py() or 0)


def _channel_minutes(
    site_id: str, minute: int, devices: pa.Table, counted: np.ndarray, channels: pa.Array | None
) -> Iterator[ChannelMinute]:
    """A row per channel of the minute's media events (a channel whose events are
    all IVT has a row of zeros): concurrent plays and play time of those counted."""
    named = devices["channel_id"]
    wanted = named.to_numpy(zero_copy_only=False) != ""
    if channels is not None:
        wanted &= pc.is_in(named, value_set=channels).to_numpy(zero_copy_only=False)
    on_channel = pa.array((devices["media_events"].to_numpy() > 0) & wanted)
    rows = devices.filter(on_channel)
    live = counted[on_channel.to_numpy(zero_copy_only=False)]
    playing = pa.array(live & (rows["media"].to_numpy() > 0))
    channels = (
        pa.table(
            {
                "channel_id": rows["channel_id"],
                "play": pc.if_else(playing, rows["play_id"], pa.scalar(None, pa.string())),
                "play_ms": np.where(live, rows["play_ms"].to_numpy(), 0),
                "media_events": rows["media_events"],
            }
        )
        .group_by("channel_id")
        .aggregate([("play", "count_distinct"), ("play_ms", "sum"), ("media_events", "sum")])
        .sort_by("channel_id")
    )
    for channel in channels.to_pylist():
        yield ChannelMinute(
            site_id=site_id,
            channel_id=channel["channel_id"],
            minute_ms=minute * MINUTE_MS,
            concurrent_plays=channel["play_count_distinct"],
            play_ms=channel["play_ms_sum"],
            version=channel["media_events_sum"],
        )
