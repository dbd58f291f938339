"""Local days and months of the reporting time zone (docs/standard.md: "local").

A day is held as an integer, days since 1970-01-01, which is also how ClickHouse
stores a `Date`: the pipelines compute it once, here, and every later step and
query reuses it, so no two places can disagree on which day an event fell.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np

__all__ = ["DEFAULT_ZONE", "LocalCalendar", "date_to_day", "day_to_date", "month_of_day"]

DEFAULT_ZONE = "Asia/Ho_Chi_Minh"
MS_PER_DAY = 86_400_000
# Offsets change at most every quarter hour boundary in practice (the zone
# database has none finer), so one lookup per 15 minutes of event time is exact.
_BUCKET_MS = 900_000
_EPOCH = dt.date(1970, 1, 1)


class LocalCalendar:
    """Maps event times (ms since the epoch, UTC) to local days of one time zone."""

    def __init__(self, zone: str = DEFAULT_ZONE) -> None:
        self.zone = zone
        self._tz = ZoneInfo(zone)
        self._offsets: dict[int, int] = {}

    def offset_ms(self, ts: int) -> int:
        """The zone's UTC offset at `ts`, in ms."""
        bucket = ts // _BUCKET_MS
        offset = self._offsets.get(bucket)
        if offset is None:
            moment = dt.datetime.fromtimestamp(bucket * _BUCKET_MS / 1000, self._tz)
            delta = moment.utcoffset() or dt.timedelta(0)
            offset = self._offsets[bucket] = int(delta.total_seconds() * 1000)
        return offset

    def day(self, ts: int) -> int:
        """The local day of `ts`, as days since 1970-01-01."""
        return (ts + self.offset_ms(ts)) // MS_PER_DAY

    def days(self, ts: np.ndarray) -> np.ndarray:
        """`day` for a whole array of event times."""
        buckets, where = np.unique(ts // _BUCKET_MS, return_inverse=True)
        offsets = np.array([self.offset_ms(int(b) * _BUCKET_MS) for b in buckets], dtype=np.int64)
        return (ts + offsets[where]) // MS_PER_DAY

    def day_start_ms(self, day: int) -> int:
        """The UTC instant (ms) at which local `day` begins."""
        midnight = dt.datetime.combine(day_to_date(day), dt.time(), self._tz)
        return int(midnight.timestamp() * 1000)


def day_to_date(day: int) -> dt.date:
    return _EPOCH + dt.timedelta(days=day)


def date_to_day(date: dt.date) -> int:
    return (date - _EPOCH).days


def month_of_day(day: int) -> str:
    """`YYYY-MM` of a local day."""
    return day_to_date(day).strftime("%Y-%m")
