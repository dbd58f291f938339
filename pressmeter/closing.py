"""Closing a month (docs/standard.md §5): its figures frozen with the hash of their
inputs, and every later change a new numbered revision, never a silent one.

A month may be closed 3 days after it ends, in the reporting zone: by then the
ts window of §2 (72 h) has shut, so ingest can accept no more events of it. A
close freezes, as revision 1, the §4 month row of every site, the rankings of
outlets and of channels (when an outlet registry is given), the hash of its
inputs, the metrics version and the versions of the lists in `schemas/`.
Closing again compares the month as the store now computes it with the newest
revision: when neither a figure (of a site or of a ranked channel) nor the
inputs changed, nothing is written; otherwise revision N+1 holds the new
figures and, per site (or channel) and figure, the old value, the new one and
their difference. Rows are only ever appended (schemas/clickhouse/0011 and
0012; their columns: the CLOSED_* tables of pressmeter/store/tables.py).

The inputs of a month are the committed runs that stored an event or a
duplicate of one of its days, or of the day after it (a visit that starts in
the month is judged on its whole length, §3). Its hash is the SHA-256 of those
runs' ledger checksums, sorted: the checksums name what each run read (files by
the hash of their bytes, Kafka by partition and offsets), so the same inputs
give the same hash, whichever store or run ids counted them.
"""

from __future__ import annotations

import calendar as month_calendar
import datetime as dt
import hashlib
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa

from pressmeter import METRICS_VERSION, schemas
from pressmeter.calendar import LocalCalendar, date_to_day, month_of_day
from pressmeter.errors import ConfigError
from pressmeter.metrics import BreakdownRow, Figures, MetricRow, metric_rows
from pressmeter.ranking import (
    CHANNEL_CATEGORIES,
    DEFAULT_IVT_THRESHOLD,
    Outlet,
    RankedChannel,
    RankedOutlet,
    categories,
    channel_ranking,
    monthly_ranking,
)
from pressmeter.store import Store, quote
from pressmeter.store.tables import (
    CLOSED_CHANNEL_CHANGES,
    CLOSED_CHANNEL_RANKING,
    CLOSED_MONTH_CHANGES,
    CLOSED_MONTH_FIGURES,
    CLOSED_MONTH_RANKING,
    CLOSED_MONTHS,
    MONTH_ROW_FIGURES,
    PERIOD_FIGURES,
    REVISION_KEY,
    Table,
)

__all__ = [
    "CLOSE_AFTER_DAYS",
    "Change",
    "CloseResult",
    "MonthNotDue",
    "Revision",
    "changes_of",
    "close_month",
    "closed_channel_ranking",
    "closed_months_touched",
    "closed_ranking",
    "current_ms",
    "frozen_rows",
    "inputs_hash",
    "month_last_day",
    "parse_instant",
    "parse_month",
    "refuse_if_not_due",
    "render_status",
    "revisions",
]

CLOSE_AFTER_DAYS = 3


class MonthNotDue(ConfigError):
    """The month has not ended plus its allowance yet: it cannot be closed."""


@dataclass(frozen=True)
class Revision:
    """One frozen state of a month (a row of `closed_months`, CLOSED_MONTHS)."""

    month: str
    revision: int
    close_id: str
    closed_ms: int
    inputs_hash: str
    input_runs: int
    metrics_version: str
    list_versions: str
    zone: str
    ranked: int
    channels_ranked: int  # 0 for revisions closed before the channel ranking was frozen

    @property
    def closed_at(self) -> str:
        """When it was closed (as of `--at` when given), UTC, ISO 8601."""
        return f"{dt.datetime.fromtimestamp(self.closed_ms / 1000, dt.UTC):%Y-%m-%dT%H:%M:%SZ}"


@dataclass(frozen=True)
class Change:
    """One figure that a revision changed: of a site's month row, or of one of its
    channels in the channel ranking (§5) when `channel` is set."""

    site_id: str
    figure: str
    old: int
    new: int
    channel: str = ""

    @property
    def delta(self) -> int:
        return self.new - self.old

    def __str__(self) -> str:
        where = f"{self.site_id} channel {self.channel}" if self.channel else self.site_id
        return f"{where} {self.figure}: {self.old} -> {self.new} ({self.delta:+d})"


@dataclass(frozen=True)
class CloseResult:
    revision: Revision
    written: bool
    changes: tuple[Change, ...] = ()

    def render(self) -> str:
        r = self.revision
        if not self.written:
            return (
                f"{r.month}: unchanged since revision {r.revision} "
                f"(inputs sha256:{r.inputs_hash}); nothing written"
            )
        lines = [
            f"{r.month}: closed as revision {r.revision} (inputs sha256:{r.inputs_hash}, "
            f"{r.input_runs} run(s), {r.metrics_version}"
            f"{', ranked' if r.ranked else ', no ranking: no outlet registry'})"
        ]
        if r.revision > 1 and not self.changes:
            lines[0] += "; no figure changed"
        lines += [f"  {change}" for change in self.changes]
        return "\n".join(lines)


def parse_month(text: str) -> dt.date:
    """The first day of a `YYYY-MM` month."""
    try:
        if len(text) != 7:
            raise ValueError(text)
        return dt.date.fromisoformat(f"{text}-01")
    except ValueError:
        raise ConfigError(f"not a month (YYYY-MM): {text!r}") from None


def month_last_day(first: dt.date) -> dt.date:
    """The last day of the month that starts on `first`."""
    return first.replace(day=month_calendar.monthrange(first.year, first.month)[1])


def closable_at_ms(first: dt.date, zone: str) -> int:
    """When a month may be closed: local midnight, CLOSE_AFTER_DAYS after it ends."""
    after = date_to_day(month_last_day(first)) + 1 + CLOSE_AFTER_DAYS
    return LocalCalendar(zone).day_start_ms(after)


def refuse_if_not_due(month: str, zone: str, now_ms: int) -> None:
    """MonthNotDue, with the time it will be due, before a month may be closed."""
    due = closable_at_ms(parse_month(month), zone)
    if now_ms < due:
        raise MonthNotDue(
            f"{month} cannot be closed before "
            f"{dt.datetime.fromtimestamp(due / 1000, ZoneInfo(zone)):%Y-%m-%d %H:%M} "
            f"{zone} ({CLOSE_AFTER_DAYS} days after it ends, docs/standard.md §5)"
        )


def parse_instant(text: str, zone: str) -> int:
    """Epoch ms of an ISO date and time; without an offset, in the reporting zone."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"not a date and time (YYYY-MM-DDTHH:MM[+HH:MM]): {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))
    return int(moment.timestamp() * 1000)


def current_ms() -> int:
    """Now, in ms since the epoch (the default clock of every check here)."""
    return time.time_ns() // 1_000_000


def inputs_hash(store: Store, first: dt.date) -> tuple[str, int]:
    """(SHA-256 of the month's input runs' checksums, number of those runs)."""
    days = f"day BETWEEN toDate('{first}') AND toDate('{month_last_day(first) + dt.timedelta(1)}')"
    checksums = sorted(
        str(checksum)
        for (checksum,) in store.rows(
            "SELECT any(checksum) FROM runs WHERE status = 'committed' "
            f"AND (run_id IN (SELECT run_id FROM events WHERE {days}) "
            f"OR run_id IN (SELECT run_id FROM duplicate_events WHERE {days})) GROUP BY run_id"
        )
    )
    return hashlib.sha256("\n".join(checksums).encode()).hexdigest(), len(checksums)


def revisions(store: Store, month: str | None = None) -> list[Revision]:
    """The recorded revisions, of one month or of all, by month then revision (then
    close id: should two closes have raced to one number, every reader takes the same)."""
    where = f"WHERE month = {quote(month)} " if month else ""
    rows = store.rows(
        f"SELECT {CLOSED_MONTHS.list()} FROM {CLOSED_MONTHS.name} {where}"
        "ORDER BY month, revision, close_id"
    )
    return [Revision(**dict(zip(CLOSED_MONTHS.columns, row))) for row in rows]


def _frozen(
    store: Store, table: Table, revision: Revision, order: str, where: str = ""
) -> list[dict[str, Any]]:
    """The rows `revision` wrote in `table`, as {column: value} without REVISION_KEY."""
    columns = table.without(*REVISION_KEY)
    rows = store.rows(
        f"SELECT {', '.join(columns)} FROM {table.name} WHERE month = {quote(revision.month)} "
        f"AND revision = {revision.revision} AND close_id = {quote(revision.close_id)}"
        f"{where} ORDER BY {order}"
    )
    return [dict(zip(columns, row)) for row in rows]


def _minutes(month: str) -> int:
    return 1440 * month_last_day(parse_month(month)).day


def _month_row(month: str, values: dict[str, Any]) -> MetricRow:
    """A frozen §4 month row, read back."""
    counters = {name: int(values[name]) for name in MONTH_ROW_FIGURES}
    return MetricRow(month, values["site_id"], **counters, minutes=_minutes(month))


def _channel_row(month: str, values: dict[str, Any]) -> BreakdownRow:
    """A frozen channel of the channel ranking: its §8 `channel` month row, read back."""
    counters = {name: int(values[name]) for name in PERIOD_FIGURES}
    site, channel = values["site_id"], values["channel"]
    return BreakdownRow(month, site, "channel", channel, **counters, minutes=_minutes(month))


def frozen_rows(store: Store, revision: Revision, site_id: str | None = None) -> list[MetricRow]:
    """The month rows a revision froze, by site_id."""
    site = f" AND site_id = {quote(site_id)}" if site_id else ""
    frozen = _frozen(store, CLOSED_MONTH_FIGURES, revision, "site_id", site)
    return [_month_row(revision.month, values) for values in frozen]


def _changes(
    old: dict[tuple[str, str], Figures], new: dict[tuple[str, str], Figures], figures: Sequence[str]
) -> tuple[Change, ...]:
    """Per (site, channel) and figure (by name), what differs between two sets of rows."""
    changes = []
    for site, channel in sorted(old.keys() | new.keys()):
        for figure in sorted(figures):
            was = getattr(old[site, channel], figure) if (site, channel) in old else 0
            now = getattr(new[site, channel], figure) if (site, channel) in new else 0
            if was != now:
                changes.append(Change(site, figure, was, now, channel))
    return tuple(changes)


def _month_changes(old: list[MetricRow], new: list[MetricRow]) -> tuple[Change, ...]:
    """What differs between two sets of §4 month rows, per site and figure."""
    before = {(row.site_id, ""): row for row in old}
    return _changes(before, {(row.site_id, ""): row for row in new}, MONTH_ROW_FIGURES)


def _channel_changes(
    old: dict[str, list[RankedChannel]], new: dict[str, list[RankedChannel]]
) -> tuple[Change, ...]:
    """What differs between two channel rankings, per site, channel and figure."""

    def by_channel(ranking: dict[str, list[RankedChannel]]) -> dict[tuple[str, str], Figures]:
        return {
            (e.metrics.site_id, e.metrics.value): e.metrics for r in ranking.values() for e in r
        }

    return _changes(by_channel(old), by_channel(new), PERIOD_FIGURES)


def close_month(
    store: Store,
    month: str,
    zone: str,
    outlets: dict[str, Outlet] | None = None,
    now_ms: int | None = None,
    ivt_threshold: Fraction = DEFAULT_IVT_THRESHOLD,
) -> CloseResult:
    """Freeze `month` (YYYY-MM) as its next revision, unless nothing changed.

    Refuses (MonthNotDue) before the month's end plus CLOSE_AFTER_DAYS, and a month
    the store has no figures of. Run the batch of what is due first. The channel
    ranking is compared when both the newest revision and this close have one (an
    outlet registry), as a changed registry alone makes no revision.
    """
    first = parse_month(month)
    now_ms = current_ms() if now_ms is None else now_ms
    refuse_if_not_due(month, zone, now_ms)
    figures = metric_rows(store, "month", first, first)
    if not figures:
        raise ConfigError(f"{month}: the store holds no figures of this month; nothing to close")
    digest, runs = inputs_hash(store, first)
    channels = channel_ranking(store, outlets, month) if outlets is not None else None
    history = revisions(store, month)
    newest = history[-1] if history else None
    changes: tuple[Change, ...] = ()
    if newest:
        changes = _month_changes(frozen_rows(store, newest), figures)
        frozen_channels = closed_channel_ranking(store, newest)
        if channels is not None and frozen_channels is not None:
            changes += _channel_changes(frozen_channels, channels)
    if newest and newest.inputs_hash == digest and not changes:
        return CloseResult(newest, written=False)
    revision = Revision(
        month=month,
        revision=newest.revision + 1 if newest else 1,
        close_id=secrets.token_hex(8),
        closed_ms=now_ms,
        inputs_hash=digest,
        input_runs=runs,
        metrics_version=METRICS_VERSION,
        list_versions=json.dumps(schemas.list_versions(), sort_keys=True),
        zone=zone,
        ranked=int(outlets is not None),
        channels_ranked=int(channels is not None),
    )
    ranking = monthly_ranking(store, outlets, month, ivt_threshold) if outlets is not None else {}
    _write_revision(store, revision, figures, changes, ranking, channels or {})
    return CloseResult(revision, written=True, changes=changes)


def _write_revision(
    store: Store,
    revision: Revision,
    figures: list[MetricRow],
    changes: tuple[Change, ...],
    ranking: dict[str, list[RankedOutlet]],
    channels: dict[str, list[RankedChannel]],
) -> None:
    """Its figures, rankings and changes, then the revision row that makes them count."""
    key = dict(zip(REVISION_KEY, (revision.month, revision.revision, revision.close_id)))
    rows = {
        CLOSED_MONTH_FIGURES: [
            {**key, **_counters(row, MONTH_ROW_FIGURES), "site_id": row.site_id} for row in figures
        ],
        CLOSED_MONTH_CHANGES: [_change_row(key, c) for c in changes if not c.channel],
        CLOSED_CHANNEL_CHANGES: [_change_row(key, c) for c in changes if c.channel],
        CLOSED_MONTH_RANKING: [
            {**key, **_ranked(category, entry), "flagged": int(entry.flagged)}
            for category, ranked in ranking.items()
            for entry in ranked
        ],
        CLOSED_CHANNEL_RANKING: [
            {**key, **_ranked(category, entry), "channel": entry.metrics.value}
            for category, ranked in channels.items()
            for entry in ranked
        ],
    }
    for table, table_rows in rows.items():
        if table_rows:
            store.insert(table.name, _arrow(table, table_rows))
    store.insert(CLOSED_MONTHS.name, _arrow(CLOSED_MONTHS, [asdict(revision)]))


def _counters(row: Figures, names: Sequence[str]) -> dict[str, int]:
    return {name: getattr(row, name) for name in names}


def _change_row(key: dict[str, Any], change: Change) -> dict[str, Any]:
    return {**key, **asdict(change), "delta": change.delta}


def _ranked(category: str, entry: RankedOutlet | RankedChannel) -> dict[str, Any]:
    """What a ranked outlet and a ranked channel store alike: place, outlet, figures."""
    names = PERIOD_FIGURES if isinstance(entry, RankedChannel) else MONTH_ROW_FIGURES
    return {
        **_counters(entry.metrics, names),
        "category": category,
        "rank": entry.rank,
        "site_id": entry.outlet.site_id,
        "name": entry.outlet.name,
    }


def _arrow(table: Table, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows as an Arrow table of exactly `table`'s columns, in its order."""
    return pa.Table.from_pylist([{name: row[name] for name in table.columns} for row in rows])


def closed_months_touched(store: Store, run_id: str) -> list[Revision]:
    """The closed months whose figures a run may have changed (it stored events or
    duplicates of their days, or of the day after them), by their newest revision:
    nothing changes in what they report until a new close records a revision."""
    run = quote(run_id)
    days = {
        int(day)
        for (day,) in store.rows(
            f"SELECT DISTINCT toUInt32(day) FROM events WHERE run_id = {run} UNION ALL "
            f"SELECT DISTINCT toUInt32(day) FROM duplicate_events WHERE run_id = {run}"
        )
    }
    months = {month_of_day(day - back) for day in days for back in (0, 1)}
    newest = {revision.month: revision for revision in revisions(store)}
    return [newest[month] for month in sorted(months & newest.keys())]


def changes_of(store: Store, revision: Revision) -> tuple[Change, ...]:
    """What `revision` changed against the revision before it: its sites' figures,
    then its channels'."""
    site = _frozen(store, CLOSED_MONTH_CHANGES, revision, "site_id, figure")
    channel = _frozen(store, CLOSED_CHANNEL_CHANGES, revision, "site_id, channel, figure")
    return tuple(
        Change(v["site_id"], v["figure"], int(v["old"]), int(v["new"]), v.get("channel", ""))
        for v in (*site, *channel)
    )


def closed_ranking(store: Store, revision: Revision) -> dict[str, list[RankedOutlet]] | None:
    """The ranking `revision` froze, with the figures it showed; None if it has none."""
    if not revision.ranked:
        return None
    ranking: dict[str, list[RankedOutlet]] = {category: [] for category in categories()}
    for v in _frozen(store, CLOSED_MONTH_RANKING, revision, "category, rank, site_id"):
        outlet = Outlet(v["site_id"], v["name"], v["category"])
        entry = RankedOutlet(
            int(v["rank"]), outlet, _month_row(revision.month, v), bool(v["flagged"])
        )
        ranking.setdefault(outlet.category, []).append(entry)
    return ranking


def closed_channel_ranking(
    store: Store, revision: Revision
) -> dict[str, list[RankedChannel]] | None:
    """The channel ranking `revision` froze, with the figures it showed (each share
    is exact again: its play_ms over its category's); None if it has none."""
    if not revision.channels_ranked:
        return None
    ranking: dict[str, list[RankedChannel]] = {category: [] for category in CHANNEL_CATEGORIES}
    frozen = _frozen(store, CLOSED_CHANNEL_RANKING, revision, "category, rank, site_id, channel")
    totals: dict[str, int] = {}
    for v in frozen:
        totals[v["category"]] = totals.get(v["category"], 0) + int(v["play_ms"])
    for v in frozen:
        row, total = _channel_row(revision.month, v), totals[v["category"]]
        share = Fraction(row.play_ms, total) if total else Fraction(0)
        outlet = Outlet(v["site_id"], v["name"], v["category"])
        ranking.setdefault(outlet.category, []).append(
            RankedChannel(int(v["rank"]), outlet, row, share)
        )
    return ranking


def render_status(history: Iterable[Revision], store: Store, with_changes: bool = False) -> str:
    """`close status`: one line per revision, and what it changed if asked."""
    lines = []
    for r in history:
        lines.append(
            f"{r.month}  revision {r.revision}  closed {r.closed_at}  "
            f"inputs sha256:{r.inputs_hash} ({r.input_runs} runs)  {r.metrics_version}"
        )
        if with_changes:
            lines += [f"    {change}" for change in changes_of(store, r)]
    return "\n".join(lines) or "no month is closed"
