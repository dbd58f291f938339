"""Step 3 of the standard's §2: invalid traffic (IVT), one function per rule.

Each rule marks events; an event is attributed to the first rule that marks it,
in the standard's order (GIVT-UA, GIVT-DC, SIVT-RATE), so the tallies by rule
add up to `ivt_events`. The batch facts and the live pipeline both call these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pressmeter import schemas
from pressmeter.calendar import LocalCalendar
from pressmeter.pipelines.memo import Memo

__all__ = [
    "DATACENTER",
    "RATE_LIMIT_PER_MINUTE",
    "BotMatcher",
    "IvtVerdicts",
    "givt_datacenter",
    "group_starts",
    "judge_ivt",
    "over_rate_limit",
    "sivt_rate",
]

# SIVT-RATE: more than this many page views of one device in one UTC minute.
RATE_LIMIT_PER_MINUTE = 30
MINUTE_MS = 60_000
# The code of `ip_class = 'datacenter'` in the stored enum (schemas/clickhouse/0002_events.sql).
DATACENTER = 2


class BotMatcher:
    """GIVT-UA: `ua` contains, case-insensitively, a pattern of `schemas/bots.txt`,
    or `ua` is empty.

    User agents repeat a great deal, so each distinct one is judged once and
    remembered (up to a bound, past which the memory starts again).
    """

    MEMORY = 100_000

    def __init__(self) -> None:
        self.patterns = schemas.bot_patterns()
        self._verdicts = Memo(self, self.MEMORY)

    def __call__(self, ua: str) -> int:
        lowered = ua.lower()
        return int(not ua or any(p in lowered for p in self.patterns))

    def verdicts(self, agents: list[str]) -> np.ndarray:
        """1 for each bot (or empty) agent, else 0."""
        return np.fromiter(self._verdicts(agents), np.uint8, len(agents))


def givt_datacenter(ip_class: np.ndarray) -> np.ndarray:
    """GIVT-DC: the event's `ip_class` is `datacenter` (decided at ingest, where
    the address was known; it is gone after)."""
    return ip_class == DATACENTER


def group_starts(*keys: np.ndarray) -> np.ndarray:
    """Mask of rows where any key differs from the row before (sorted input)."""
    n = len(keys[0])
    start = np.zeros(n, dtype=bool)
    if n:
        start[0] = True
        for key in keys:
            start[1:] |= key[1:] != key[:-1]
    return start


def over_rate_limit(page_views_in_minute: np.ndarray) -> np.ndarray:
    """SIVT-RATE's test of one device's page views in one UTC minute (docs/standard.md
    §2): more than RATE_LIMIT_PER_MINUTE. The batch and the live figures both ask it."""
    return page_views_in_minute > RATE_LIMIT_PER_MINUTE


def sivt_rate(
    device: np.ndarray,
    ts: np.ndarray,
    day: np.ndarray,
    page_view: np.ndarray,
    calendar: LocalCalendar,
) -> np.ndarray:
    """SIVT-RATE: every event of a device on the local day of a UTC minute
    (`floor(ts / 60000)`) in which that device has more than
    RATE_LIMIT_PER_MINUTE kept page views (IVT or not).

    `device` numbers the devices of one site, rows sorted by (device, ts).
    """
    rows = np.flatnonzero(page_view)
    minute = ts[rows] // MINUTE_MS
    starts = np.flatnonzero(group_starts(device[rows], minute))
    counts = np.diff(np.append(starts, len(rows)))
    hot = starts[over_rate_limit(counts)]
    if not len(hot):
        return np.zeros(len(ts), dtype=bool)
    hot_days = calendar.days(minute[hot] * MINUTE_MS)
    flagged = np.unique(device[rows][hot] * 1_000_000 + hot_days)
    return np.isin(device * 1_000_000 + day, flagged)


@dataclass(frozen=True)
class IvtVerdicts:
    """Per event, the rule it is IVT by (at most one), and whether it counts."""

    ua: np.ndarray
    datacenter: np.ndarray
    rate: np.ndarray

    @property
    def counted(self) -> np.ndarray:
        return ~(self.ua | self.datacenter | self.rate)


def judge_ivt(
    ua_bot: np.ndarray,
    ip_class: np.ndarray,
    device: np.ndarray,
    ts: np.ndarray,
    day: np.ndarray,
    page_view: np.ndarray,
    calendar: LocalCalendar,
) -> IvtVerdicts:
    """All three rules, each event attributed to the first that marks it."""
    ua = ua_bot.astype(bool)
    datacenter = givt_datacenter(ip_class) & ~ua
    rate = sivt_rate(device, ts, day, page_view, calendar) & ~ua & ~datacenter
    return IvtVerdicts(ua, datacenter, rate)
