"""Builders of canonical events (docs/standard.md §1) as a broadcaster's back end,
set-top box or OTT platform sends them to ingest.

Events are plain dicts. They carry no `received_at` and no `ip_class`: ingest
sets both. A server may add its user's address as `ip` (ingest uses it for
`ip_class`, `province` and, when no `device_id` is given, a cookieless id, then
drops it) and the user's `ua`.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from .errors import InvalidEvent

__all__ = [
    "MediaSession",
    "check_event",
    "engagement",
    "new_event_id",
    "now_ms",
    "page_view",
]

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TYPES = {"page_view", "engagement", "media"}
_ACTIONS = {"start", "heartbeat", "pause", "end"}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "page_view": ("url",),
    "engagement": ("url", "engaged_ms"),
    "media": ("media_id", "action", "played_ms", "play_id"),
}


def now_ms() -> int:
    """Milliseconds since the Unix epoch, UTC."""
    return time.time_ns() // 1_000_000


def new_event_id() -> str:
    """A fresh event id (32 hex characters, random): ingest and the pipeline
    deduplicate on (site_id, event_id), so an event sent twice counts once."""
    return uuid.uuid4().hex


def _base(
    kind: str,
    device_id: str | None,
    ts: int | None,
    event_id: str | None,
    ua: str | None,
    ip: str | None,
    dims: Mapping[str, Any],
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": event_id or new_event_id(),
        "type": kind,
        "ts": now_ms() if ts is None else ts,
    }
    if device_id is not None:
        event["device_id"] = device_id
    if ua is not None:
        event["ua"] = ua
    if ip is not None:
        event["ip"] = ip
    event.update({k: v for k, v in dims.items() if v is not None})
    return event


def page_view(
    url: str,
    device_id: str | None = None,
    *,
    ts: int | None = None,
    event_id: str | None = None,
    ua: str | None = None,
    ip: str | None = None,
    **dims: Any,
) -> dict[str, Any]:
    """A `page_view`. `dims`: optional fields such as `section`, `title`, `referrer`."""
    event = _base("page_view", device_id, ts, event_id, ua, ip, dims)
    event["url"] = url
    return event


def engagement(
    url: str,
    engaged_ms: int,
    device_id: str | None = None,
    *,
    ts: int | None = None,
    event_id: str | None = None,
    ua: str | None = None,
    ip: str | None = None,
    **dims: Any,
) -> dict[str, Any]:
    """An `engagement`: `engaged_ms` engaged since the previous engagement event
    of the same page view (the metric caps each event at 30 s)."""
    event = _base("engagement", device_id, ts, event_id, ua, ip, dims)
    event.update(url=url, engaged_ms=int(engaged_ms))
    return event


class MediaSession:
    """One playback (`play_id`) of one medium by one device: builds its start,
    heartbeat, pause and end events with `played_ms` = the milliseconds played
    since the previous event of this play, measured on `clock` while playing
    (between start/resume and pause/end), or given explicitly by the caller
    (a set-top box that knows its position may do so).

        play = MediaSession("dev-1", "vtv1-live", media_kind="video", stream="live")
        client.send(play.start())
        client.send(play.heartbeat())   # every 30-60 s while playing
        client.send(play.end())

    Send a heartbeat at least every 60 s of play: the metric caps `played_ms`
    at 60000 per event. Thread-safe (one lock per session).
    """

    def __init__(
        self,
        device_id: str | None,
        media_id: str,
        *,
        play_id: str | None = None,
        ua: str | None = None,
        ip: str | None = None,
        clock: Callable[[], int] = now_ms,
        **dims: Any,
    ) -> None:
        self.device_id = device_id
        self.media_id = media_id
        self.play_id = play_id or uuid.uuid4().hex
        self.ua = ua
        self.ip = ip
        self.dims = dims
        self._clock = clock
        self._lock = threading.Lock()
        self._started = False
        self._ended = False
        self._playing_since: int | None = None
        self._now = 0
        self.total_played_ms = 0

    @property
    def playing(self) -> bool:
        return self._playing_since is not None

    def _event(self, action: str, played_ms: int | None, ts: int | None) -> dict[str, Any]:
        now = self._clock()
        self._now = now
        if self._ended:
            raise InvalidEvent(f"play {self.play_id} has ended")
        if action != "start" and not self._started:
            raise InvalidEvent(f"play {self.play_id}: {action} before start")
        if action == "start" and self._started:
            raise InvalidEvent(f"play {self.play_id} already started")
        measured = 0
        if self._playing_since is not None:
            measured = max(0, now - self._playing_since)
            self._playing_since = now
        played = measured if played_ms is None else int(played_ms)
        if played < 0:
            raise InvalidEvent("played_ms must be >= 0")
        self.total_played_ms += played
        event = _base(
            "media", self.device_id, now if ts is None else ts, None, self.ua, self.ip, self.dims
        )
        event.update(media_id=self.media_id, play_id=self.play_id, action=action, played_ms=played)
        return event

    def start(self, ts: int | None = None) -> dict[str, Any]:
        """The `start` event (played_ms 0); the play clock runs from now."""
        with self._lock:
            event = self._event("start", 0, ts)
            self._started = True
            self._playing_since = self._now
            return event

    def heartbeat(self, played_ms: int | None = None, ts: int | None = None) -> dict[str, Any]:
        """A `heartbeat` with the play time since the previous event."""
        with self._lock:
            return self._event("heartbeat", played_ms, ts)

    def pause(self, played_ms: int | None = None, ts: int | None = None) -> dict[str, Any]:
        """A `pause` event; the play clock stops until `resume()`."""
        with self._lock:
            event = self._event("pause", played_ms, ts)
            self._playing_since = None
            return event

    def resume(self) -> None:
        """Playback goes on after a pause (no event: the next heartbeat carries it)."""
        with self._lock:
            if self._started and not self._ended and self._playing_since is None:
                self._playing_since = self._clock()

    def end(self, played_ms: int | None = None, ts: int | None = None) -> dict[str, Any]:
        """The `end` event with the remaining play time; the session is finished."""
        with self._lock:
            event = self._event("end", played_ms, ts)
            self._playing_since = None
            self._ended = True
            return event


def _is_int(value: Any) -> bool:
    return type(value) is int


def check_event(event: Any) -> None:
    """Refuse (InvalidEvent) what ingest would refuse for sure: not an object, a
    bad `event_id`/`type`, a required field missing, a non-integer `ts` or
    counter. The full rules are checked by ingest; this catches mistakes early."""
    if not isinstance(event, Mapping):
        raise InvalidEvent(f"an event is a dict, not {type(event).__name__}")
    event_id = event.get("event_id")
    if not isinstance(event_id, str) or not _ID.fullmatch(event_id):
        raise InvalidEvent(f"event_id must be 1-64 chars of [A-Za-z0-9_-]: {event_id!r}")
    kind = event.get("type")
    if kind not in _TYPES:
        raise InvalidEvent(f"type must be one of {sorted(_TYPES)}: {kind!r}")
    if not _is_int(event.get("ts")):
        raise InvalidEvent("ts must be an integer (ms since the epoch)")
    for name in _REQUIRED[kind]:
        if name not in event:
            raise InvalidEvent(f"a {kind} event needs {name}")
    for name in ("engaged_ms", "played_ms"):
        if name in event and (not _is_int(event[name]) or event[name] < 0):
            raise InvalidEvent(f"{name} must be an integer >= 0")
    if kind == "media" and event.get("action") not in _ACTIONS:
        raise InvalidEvent(f"action must be one of {sorted(_ACTIONS)}")
