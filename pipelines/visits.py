"""The per-event and per-visit rules of the standard's §3 (docs/standard.md §3),
one function each, on the columns of one site's events sorted by (device, ts).

Caps and thresholds are the named constants below, used where they apply
(the store's reach threshold in pipelines/incremental.py is REACH_MS too).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pressmeter.pipelines.ivt import group_starts

__all__ = [
    "ENGAGED_CAP_MS",
    "ENGAGED_VISIT_MS",
    "ENGAGED_VISIT_PAGEVIEWS",
    "PLAYED_CAP_MS",
    "REACH_MS",
    "VISIT_GAP_MS",
    "Visits",
    "capped_engaged_ms",
    "capped_played_ms",
    "engaged_visits",
    "find_visits",
    "reached",
]

# §3 engaged_ms: each engagement event counts at most 30 s.
ENGAGED_CAP_MS = 30_000
# §3 play_ms: each media event counts at most 60 s.
PLAYED_CAP_MS = 60_000
# §3 Visits: a new visit after a gap of more than 30 minutes.
VISIT_GAP_MS = 1_800_000
# §3 engaged_visits: 2 page views, or 10 s engaged, or 10 s played.
ENGAGED_VISIT_PAGEVIEWS = 2
ENGAGED_VISIT_MS = 10_000
# §3 media_reach: a device is reached on a day when it played 60 s on the site.
REACH_MS = 60_000


def capped_engaged_ms(engagement: np.ndarray, value_ms: np.ndarray) -> np.ndarray:
    """§3 engaged_ms: per engagement event, min(engaged_ms, ENGAGED_CAP_MS); 0 otherwise."""
    return np.where(engagement, np.minimum(value_ms, ENGAGED_CAP_MS), 0)


def capped_played_ms(media: np.ndarray, value_ms: np.ndarray) -> np.ndarray:
    """§3 play_ms: per media event, min(played_ms, PLAYED_CAP_MS); 0 otherwise."""
    return np.where(media, np.minimum(value_ms, PLAYED_CAP_MS), 0)


@dataclass(frozen=True)
class Visits:
    """The visits of the counted events `rows` (indices into the site's events).

    `number[i]` is the visit of `rows[i]`; `first[v]` the row of visit v's first event.
    """

    rows: np.ndarray
    number: np.ndarray
    first: np.ndarray

    def __len__(self) -> int:
        return len(self.first)

    def total(self, per_event: np.ndarray) -> np.ndarray:
        """Per visit, the sum of a per-event figure over its events."""
        return np.bincount(self.number, weights=per_event[self.rows], minlength=len(self)).astype(
            np.int64
        )


def find_visits(device: np.ndarray, ts: np.ndarray, counted: np.ndarray) -> Visits:
    """§3 Visits: the counted events of a device in ts order; a visit starts at the
    first, and again after a gap of more than VISIT_GAP_MS (exactly 30 min does
    not start one). Not cut at midnight: a visit is of its first event's day."""
    rows = np.flatnonzero(counted)
    gap = np.zeros(len(rows), dtype=bool)
    gap[1:] = np.diff(ts[rows]) > VISIT_GAP_MS
    starts = group_starts(device[rows]) | gap
    return Visits(rows, np.cumsum(starts) - 1, rows[starts])


def engaged_visits(
    visits: Visits, page_view: np.ndarray, engaged_ms: np.ndarray, played_ms: np.ndarray
) -> np.ndarray:
    """§3 engaged_visits: per visit, whether it has ≥ 2 page views, or Σ capped
    engaged_ms ≥ 10000, or Σ capped played_ms ≥ 10000 (judged on the whole visit)."""
    return (
        (visits.total(page_view) >= ENGAGED_VISIT_PAGEVIEWS)
        | (visits.total(engaged_ms) >= ENGAGED_VISIT_MS)
        | (visits.total(played_ms) >= ENGAGED_VISIT_MS)
    )


def reached(play_ms: np.ndarray) -> np.ndarray:
    """§3 media_reach: a device-day (of a site, or of one §8 value) is reached
    when its Σ capped played_ms is ≥ REACH_MS."""
    return play_ms >= REACH_MS
