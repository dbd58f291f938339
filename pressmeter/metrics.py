"""Reading pm-metrics/1 back out of the store: per site and day or month, exactly
the columns of METRICS.md §4.

Days are summed into months for the additive metrics; `visitors` and
`media_reach` merge the days' sketches (a month's visitors are not the sum of
its days'); `ama` is derived last, from `play_ms` and the period's minutes.
"""

from __future__ import annotations

import calendar as month_calendar
import csv
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import IO

from pressmeter.store import COMMITTED, CURRENT_FACTS, Store, quote

__all__ = ["EXPORT_COLUMNS", "MetricRow", "metric_rows", "write_csv"]

EXPORT_COLUMNS = (
    "period",
    "site_id",
    "pageviews",
    "visits",
    "engaged_visits",
    "visitors",
    "engaged_ms",
    "media_starts",
    "media_completes",
    "play_ms",
    "media_reach",
    "ama",
    "ivt_events",
    "duplicate_events",
)
_SUMMED = (
    "pageviews",
    "visits",
    "engaged_visits",
    "engaged_ms",
    "media_starts",
    "media_completes",
    "play_ms",
    "ivt_events",
)


@dataclass
class MetricRow:
    period: str
    site_id: str
    pageviews: int = 0
    visits: int = 0
    engaged_visits: int = 0
    visitors: int = 0
    engaged_ms: int = 0
    media_starts: int = 0
    media_completes: int = 0
    play_ms: int = 0
    media_reach: int = 0
    ivt_events: int = 0
    duplicate_events: int = 0
    minutes: int = 1440

    @property
    def ama(self) -> Decimal:
        """Average minute audience, rounded half up to 4 decimals, exactly."""
        value = Decimal(self.play_ms) / Decimal(60_000 * self.minutes)
        return value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)

    def as_csv(self) -> list[str]:
        return [
            str(self.ama) if name == "ama" else str(getattr(self, name)) for name in EXPORT_COLUMNS
        ]


def _period_sql(grain: str) -> str:
    return "toStartOfMonth(day)" if grain == "month" else "day"


def _label(period: dt.date, grain: str) -> tuple[str, int]:
    """(`YYYY-MM-DD` or `YYYY-MM`, minutes in the period)."""
    if grain == "month":
        days = month_calendar.monthrange(period.year, period.month)[1]
        return period.strftime("%Y-%m"), 1440 * days
    return period.isoformat(), 1440


def metric_rows(
    store: Store,
    grain: str = "day",
    first: dt.date | None = None,
    last: dt.date | None = None,
    site_id: str | None = None,
) -> list[MetricRow]:
    """The export rows, sorted by period then site_id."""
    if grain not in ("day", "month"):
        raise ValueError(f"grain must be day or month, not {grain!r}")
    if grain == "month":
        first = first.replace(day=1) if first else None
        if last:
            last = last.replace(day=month_calendar.monthrange(last.year, last.month)[1])
    where = []
    if first:
        where.append(f"day >= toDate('{first.isoformat()}')")
    if last:
        where.append(f"day <= toDate('{last.isoformat()}')")
    if site_id:
        where.append(f"site_id = {quote(site_id)}")
    extra = "".join(f" AND {w}" for w in where)
    period = _period_sql(grain)
    rows: dict[tuple[str, str], MetricRow] = {}

    def row(site: str, when: dt.date) -> MetricRow:
        label, minutes = _label(when, grain)
        key = (label, site)
        if key not in rows:
            rows[key] = MetricRow(label, site, minutes=minutes)
        return rows[key]

    sums = ", ".join(f"sum({name})" for name in _SUMMED)
    for site, when, *values in store.rows(
        f"SELECT site_id, {period} AS period, {sums} FROM daily_facts "
        f"WHERE {CURRENT_FACTS}{extra} GROUP BY site_id, period"
    ):
        target = row(site, when)
        for name, value in zip(_SUMMED, values):
            setattr(target, name, int(value))
    for site, when, visitors, reach in store.rows(
        f"SELECT site_id, {period} AS period, uniqCombinedMerge(visitors), "
        f"uniqCombinedMerge(media_reach) FROM daily_sketches "
        f"WHERE {CURRENT_FACTS}{extra} GROUP BY site_id, period"
    ):
        target = row(site, when)
        target.visitors, target.media_reach = int(visitors), int(reach)
    for site, when, duplicates in store.rows(
        f"SELECT site_id, {period} AS period, count() "
        f"FROM duplicate_events WHERE {COMMITTED}{extra} GROUP BY site_id, period"
    ):
        row(site, when).duplicate_events = int(duplicates)
    return [rows[key] for key in sorted(rows)]


def write_csv(rows: Iterable[MetricRow], out: IO[str]) -> int:
    """METRICS.md §4 CSV; returns the number of data rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for metric_row in rows:
        writer.writerow(metric_row.as_csv())
        count += 1
    return count
