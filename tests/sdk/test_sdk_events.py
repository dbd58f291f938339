"""The event builders: canonical fields, played_ms measured on the play clock."""

from __future__ import annotations

import pytest

from pressmeter.collectors.sdk import InvalidEvent, MediaSession, check_event, page_view


def test_played_ms_is_the_play_time_since_the_previous_event() -> None:
    now = [1_700_000_000_000]
    play = MediaSession("stb-1", "vov1-live", clock=lambda: now[0], media_kind="audio")
    events = [play.start()]
    now[0] += 45_000
    events.append(play.heartbeat())
    now[0] += 10_000
    events.append(play.pause())
    now[0] += 600_000  # paused: not played
    play.resume()
    now[0] += 20_000
    events.append(play.end())
    assert [e["action"] for e in events] == ["start", "heartbeat", "pause", "end"]
    assert [e["played_ms"] for e in events] == [0, 45_000, 10_000, 20_000]
    assert play.total_played_ms == 75_000
    assert len({e["event_id"] for e in events}) == 4 and len({e["play_id"] for e in events}) == 1
    assert events[0]["ts"] == 1_700_000_000_000 and events[0]["media_kind"] == "audio"
    for event in events:
        check_event(event)
    with pytest.raises(InvalidEvent):
        play.heartbeat()  # ended


def test_builders_make_canonical_events() -> None:
    view = page_view("https://tv1.vn/a", device_id="d", section="news", title=None)
    check_event(view)
    assert view["type"] == "page_view" and view["section"] == "news" and "title" not in view
    with pytest.raises(InvalidEvent):
        MediaSession("d", "m").heartbeat()  # before start
