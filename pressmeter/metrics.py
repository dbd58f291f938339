"""Reading pm-metrics/1 back out of the store: per site and day or month, exactly
the columns of docs/standard.md §4, and per §8 dimension and value, those of §8.

Days are summed into months for the additive metrics; `visitors` and
`media_reach` merge the days' sketches (a month's visitors are not the sum of
its days'); `ama` is derived last, from `play_ms` and the period's minutes.
"""

from __future__ import annotations

import calendar as month_calendar
import csv
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import IO

from pressmeter.errors import ConfigError
from pressmeter.pipelines.visits import REACH_MS
from pressmeter.store import (
    COMMITTED,
    CURRENT_FACTS,
    Store,
    current_device_days,
    current_devices,
    quote,
)
from pressmeter.store.tables import ADDITIVE_FIGURES, PERIOD_FIGURES

__all__ = [
    "BREAKDOWN_COLUMNS",
    "DIMENSIONS",
    "EXPORT_COLUMNS",
    "NONE_VALUE",
    "BreakdownRow",
    "MetricRow",
    "Provenance",
    "breakdown_rows",
    "exact_audience",
    "exact_value_reach",
    "metric_rows",
    "provenance",
    "write_csv",
]

EXPORT_COLUMNS = (
    "period",
    "site_id",
    *PERIOD_FIGURES,
    "ama",
    "ivt_events",
    "duplicate_events",
)
# §8's columns and dimensions (pipelines/breakdowns.py computes them).
BREAKDOWN_COLUMNS = ("period", "site_id", "dimension", "value", *PERIOD_FIGURES, "ama")
# §8's dimensions, in its order, and the event field of each (source is derived
# from the referrer of a visit's first event: pipelines/referrers.py).
DIMENSIONS: dict[str, str | None] = {
    "section": "section",
    "content": "content_id",
    "channel": "channel_id",
    "stream": "stream",
    "province": "province",
    "device_type": "device_type",
    "source": None,
}
# How a missing or empty value shows (stored as ''; a literal `(none)` is the same).
NONE_VALUE = "(none)"
_SUMMED = (*ADDITIVE_FIGURES, "ivt_events", "counted_events")


def ama(play_ms: int, minutes: int) -> Decimal:
    """§3 ama: play_ms / 60000 / minutes in the period, rounded half up to 4
    decimals, exactly."""
    value = Decimal(play_ms) / Decimal(60_000 * minutes)
    return value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


@dataclass(kw_only=True)
class Figures:
    """The §3 figures of a period (the key fields come first, in the subclasses)."""

    pageviews: int = 0
    visits: int = 0
    engaged_visits: int = 0
    visitors: int = 0
    engaged_ms: int = 0
    media_starts: int = 0
    media_completes: int = 0
    play_ms: int = 0
    media_reach: int = 0
    minutes: int = 1440

    @property
    def ama(self) -> Decimal:
        return ama(self.play_ms, self.minutes)


@dataclass
class MetricRow(Figures):
    """One row of §4's export, with the counted events the IVT rate needs."""

    period: str
    site_id: str
    ivt_events: int = 0
    duplicate_events: int = 0
    counted_events: int = 0

    @property
    def ivt_rate(self) -> Fraction:
        """§5 IVT rate: ivt_events / (ivt_events + counted events), exactly."""
        total = self.ivt_events + self.counted_events
        return Fraction(self.ivt_events, total) if total else Fraction(0)

    def as_csv(self) -> list[str]:
        return [str(getattr(self, name)) for name in EXPORT_COLUMNS]


@dataclass
class BreakdownRow(Figures):
    """One row of §8's export: a site, period, dimension and value."""

    period: str
    site_id: str
    dimension: str
    value: str

    def as_csv(self) -> list[str]:
        return [str(getattr(self, name)) for name in BREAKDOWN_COLUMNS]

    def sort_key(self) -> tuple[str, bytes, bytes]:
        """§8's order: period, site_id, then value by the bytes of its UTF-8 text."""
        return self.period, self.site_id.encode(), self.value.encode()


def _period_sql(grain: str) -> str:
    return "toStartOfMonth(day)" if grain == "month" else "day"


def _label(period: dt.date, grain: str) -> tuple[str, int]:
    """(`YYYY-MM-DD` or `YYYY-MM`, minutes in the period)."""
    if grain == "month":
        days = month_calendar.monthrange(period.year, period.month)[1]
        return period.strftime("%Y-%m"), 1440 * days
    return period.isoformat(), 1440


def _filters(grain: str, first: dt.date | None, last: dt.date | None, site_id: str | None) -> str:
    """SQL conditions (each after AND) for the days of whole periods and a site."""
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
    return "".join(f" AND {w}" for w in where)


def metric_rows(
    store: Store,
    grain: str = "day",
    first: dt.date | None = None,
    last: dt.date | None = None,
    site_id: str | None = None,
) -> list[MetricRow]:
    """The export rows, sorted by period then site_id."""
    extra = _filters(grain, first, last, site_id)
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


def breakdown_rows(
    store: Store,
    dimension: str,
    grain: str = "day",
    first: dt.date | None = None,
    last: dt.date | None = None,
    site_id: str | None = None,
) -> list[BreakdownRow]:
    """§8's export rows of one dimension, in §8's order. Values are stored as
    they came ('' for none, shown `(none)`); months merge the days' sketches."""
    if dimension not in DIMENSIONS:
        raise ConfigError(f"unknown dimension {dimension!r}: use one of {', '.join(DIMENSIONS)}")
    extra = _filters(grain, first, last, site_id)
    sums = ", ".join(f"sum({name})" for name in ADDITIVE_FIGURES)
    rows = []
    for site, when, value, *figures, visitors, reach in store.rows(
        f"SELECT site_id, {_period_sql(grain)} AS period, value, {sums}, "
        "uniqCombinedMerge(visitors), uniqCombinedMerge(media_reach) FROM daily_breakdowns "
        f"WHERE {CURRENT_FACTS} AND dimension = {quote(dimension)}{extra} "
        "GROUP BY site_id, period, value"
    ):
        label, minutes = _label(when, grain)
        row = BreakdownRow(label, site, dimension, value or NONE_VALUE, minutes=minutes)
        for name, figure in zip(ADDITIVE_FIGURES, figures):
            setattr(row, name, int(figure))
        row.visitors, row.media_reach = int(visitors), int(reach)
        rows.append(row)
    return sorted(rows, key=BreakdownRow.sort_key)


def _days(first: dt.date, last: dt.date) -> str:
    return f"day BETWEEN toDate('{first.isoformat()}') AND toDate('{last.isoformat()}')"


def exact_audience(store: Store, first: dt.date, last: dt.date) -> dict[str, tuple[int, int]]:
    """site → (visitors, media_reach) of the days first..last, counted exactly
    from the current per-device rows (not sketches), so a rank never depends on
    the backend or on the order sketches were merged in."""
    where = f"{COMMITTED} AND {_days(first, last)}"
    rows = store.rows(
        "SELECT site_id, uniqExactIf(device_id, counted_events > 0), "
        f"uniqExactIf(device_id, play_ms >= {REACH_MS}) "
        f"FROM ({current_device_days(where, ('counted_events', 'play_ms'))}) GROUP BY site_id"
    )
    return {site: (int(visitors), int(reach)) for site, visitors, reach in rows}


def exact_value_reach(
    store: Store, dimension: str, first: dt.date, last: dt.date
) -> dict[tuple[str, str], int]:
    """(site, value) → media_reach of one §8 dimension's values over first..last,
    exactly: devices whose Σ capped play with the value reached on a day."""
    where = f"{COMMITTED} AND {_days(first, last)}"
    rows = store.rows(
        "SELECT site_id, value, uniqExactIf(device_id, play_ms >= "
        f"{REACH_MS}) FROM device_values WHERE {where} AND dimension = {quote(dimension)} "
        f"AND (site_id, day, device_id, run_id) IN ({current_devices(where)}) "
        "GROUP BY site_id, value"
    )
    return {(site, value or NONE_VALUE): int(reach) for site, value, reach in rows}


@dataclass
class Provenance:
    """Where the figures of one site and day came from (pm-metrics/1 §7)."""

    site_id: str
    day: dt.date
    generation: str = ""  # the run whose facts are current
    generation_kind: str = ""
    metrics_version: str = ""
    lists: dict[str, str] = field(default_factory=dict)
    # run → (events of the day it stored, its inputs: source id, name, positions, checksum)
    runs: dict[str, tuple[int, list[tuple[str, str, int, int, str]]]] = field(default_factory=dict)

    def render(self) -> str:
        if not self.generation:
            return f"{self.site_id} {self.day}: no figures"
        lines = [
            f"{self.site_id} {self.day}: figures of run {self.generation} "
            f"({self.generation_kind}, {self.metrics_version})",
            "  lists: " + ", ".join(f"{name} {version}" for name, version in self.lists.items()),
            "  events from:",
        ]
        for run, (events, inputs) in self.runs.items():
            lines.append(f"    run {run}: {events:,} events of the day")
            lines += [
                f"      {name or source} [{first}-{last}] source {source} checksum {checksum}"
                for source, name, first, last, checksum in inputs
            ]
        return "\n".join(lines)


def provenance(store: Store, site_id: str, day: dt.date) -> Provenance:
    """Which run's facts are current for the site and day, under which metrics
    and list versions, and which runs and inputs (by content hash) stored the
    events they were computed from."""
    found = Provenance(site_id, day)
    where = f"site_id = {quote(site_id)} AND day = toDate('{day.isoformat()}')"
    current = store.rows(f"SELECT run_id FROM current_generations WHERE {where}")
    if not current:
        return found
    found.generation = current[0][0]
    run = quote(found.generation)
    found.generation_kind, found.metrics_version = store.rows(
        "SELECT anyIf(source_kind, status = 'started'), any(metrics_version) FROM runs "
        f"WHERE run_id = {run}"
    )[0]
    found.lists = dict(
        store.rows(f"SELECT list, version FROM fact_lists WHERE run_id = {run} ORDER BY list")
    )
    for source_run, events in store.rows(
        f"SELECT run_id, count() FROM events WHERE {where} AND {COMMITTED} "
        "GROUP BY run_id ORDER BY run_id"
    ):
        inputs = store.rows(
            "SELECT source_id, name, first_position, last_position, checksum FROM run_sources "
            f"WHERE run_id = {quote(source_run)} ORDER BY source_index"
        )
        found.runs[source_run] = (int(events), [tuple(row) for row in inputs])
    return found


def write_csv(
    rows: Iterable[MetricRow | BreakdownRow],
    out: IO[str],
    columns: tuple[str, ...] = EXPORT_COLUMNS,
) -> int:
    """docs/standard.md §4 CSV (or §8's, with its `columns`); returns the number of data
    rows. Text is quoted as CSV requires and never cut."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for metric_row in rows:
        writer.writerow(metric_row.as_csv())
        count += 1
    return count
