"""The live figures of one minute from per-device summaries, against hand-counted values."""

from __future__ import annotations

import pyarrow as pa

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
from pressmeter.pipelines.live.minutes import first_copies

MINUTE = 29_000_000  # a minute number: ts // 60000
TS = MINUTE * 60_000
READER, VIEWER = 1, 2


def _rows(*events: tuple) -> pa.Table:
    """(device, type, value_ms, play_id, channel_id, ua_ivt, ip_class) per event."""
    rows = [
        (f"{device}-{number}", device, TS + number, kind, ua_ivt, ip_class, value, play, channel)
        for number, (device, kind, value, play, channel, ua_ivt, ip_class) in enumerate(events)
    ]
    columns = dict(zip(LIVE_ROWS.names, zip(*rows)))
    return pa.table({k: list(v) for k, v in columns.items()}, schema=LIVE_ROWS)


def _view(device: str, ua_ivt: int = 0) -> tuple:
    return (device, "page_view", 0, "", "", ua_ivt, 1)


def _media(device: str, play: str, channel: str, played_ms: int, ip_class: int = 1) -> tuple:
    return (device, "media", played_ms, play, channel, 0, ip_class)


FIRST = _rows(
    _view("d1"),
    _view("d1"),
    ("d1", "engagement", 15_000, "", "", 0, 1),
    _media("d2", "p1", "ch1", 30_000),
    _media("d2", "p1", "ch1", 30_000),
    _media("d2", "p1", "ch1", 90_000),  # capped at 60 s
    _view("d3", ua_ivt=1),  # GIVT-UA
    _media("d4", "p2", "ch1", 10_000, ip_class=2),  # GIVT-DC
)
SECOND = _rows(
    _view("d1"),
    *[_view("d5")] * 31,  # SIVT-RATE: more than 30 page views in the minute
    _media("d5", "p3", "ch2", 5_000),
    _media("d2", "p1", "ch1", 20_000),
)
CARRIED = pa.table(
    {"device_id": ["d1", "d9", "d8"], "role": [READER, READER, VIEWER], "events": [2, 1, 3]},
    schema=CARRIED_ROWS,
)


def test_a_minute_in_two_batches_gives_the_hand_counted_figures() -> None:
    devices = merge_rows([summarize_devices(FIRST), summarize_devices(SECOND)], DEVICE_ROWS)
    carried = merge_rows([CARRIED.slice(0, 2), CARRIED.slice(2)], CARRIED_ROWS)

    figures = list(minute_figures(("news1.vn", MINUTE), devices, carried))

    assert figures == [
        SiteMinute(
            site_id="news1.vn",
            minute_ms=TS,
            page_views=3,  # d1's; d3 is GIVT, d5 over the rate
            play_ms=140_000,  # d2: 30 + 30 + 60 + 20 s
            readers=2,  # d1, and d9 carried
            viewers=2,  # d2, and d8 carried
            concurrent_plays=1,  # p1 (p2 is GIVT, p3 over the rate)
            ivt_events=34,  # d3 1, d4 1, d5 32
            version=48,  # 42 events of the minute, 6 carried
        ),
        ChannelMinute("news1.vn", "ch1", TS, concurrent_plays=1, play_ms=140_000, version=5),
        ChannelMinute("news1.vn", "ch2", TS, concurrent_plays=0, play_ms=0, version=1),
    ]


def test_the_devices_carried_on_are_the_active_ones_without_givt() -> None:
    carried = carried_devices(summarize_devices(FIRST)).sort_by("device_id").to_pylist()

    assert carried == [
        {"device_id": "d1", "role": READER, "events": 3},
        {"device_id": "d2", "role": VIEWER, "events": 3},
    ]


def test_summaries_merge_to_one_row_per_device_and_play() -> None:
    devices = merge_rows([summarize_devices(FIRST), summarize_devices(SECOND)], DEVICE_ROWS)
    d2 = devices.filter(pa.compute.equal(devices["device_id"], "d2")).to_pylist()

    assert d2 == [
        {
            "device_id": "d2",
            "play_id": "p1",
            "channel_id": "ch1",
            "events": 4,
            "givt_events": 0,
            "all_page_views": 0,
            "page_views": 0,
            "reading": 0,
            "media": 4,
            "play_ms": 140_000,
            "media_events": 4,
        }
    ]


def test_first_copies_keep_the_first_of_each_id_not_seen_before() -> None:
    ids = pa.array(["e5", "e1", "e2", "e5", "e3", "e1", "e4"])
    known = pa.table({"event_id": ["e2", "e9"]})

    assert first_copies(ids, known).tolist() == [0, 1, 4, 6]  # e5, e1, e3, e4


def test_a_batch_rewrites_only_its_own_channels() -> None:
    devices = merge_rows([summarize_devices(FIRST), summarize_devices(SECOND)], DEVICE_ROWS)

    figures = list(minute_figures(("news1.vn", MINUTE), devices, CARRIED, pa.array(["ch2"])))

    assert [type(row).__name__ for row in figures] == ["SiteMinute", "ChannelMinute"]
    assert figures[1] == ChannelMinute("news1.vn", "ch2", TS, 0, 0, 1)
