"""Closing a month (docs/standard.md §5): its figures frozen with the hash of their
inputs, and every later change a new numbered revision, never a silent one.

A month may be closed 3 days after it ends, in the reporting zone: by then the
ts window of §2 (72 h) has shut, so ingest can accept no more events of it. A
close freezes, as revision 1, the §4 month row of every site, the ranking (when
an outlet registry is given), the hash of its inputs, the metrics version and
the versions of the lists in `schemas/`. Closing again compares the month as
the store now computes it with the newest revision: when neither a figure nor
the inputs changed, nothing is written; otherwise revision N+1 holds the new
figures and, per site and figure, the old value, the new one and their
difference. Rows are only ever appended (schemas/clickhouse/0011_closed_months.sql).

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
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from fractions import Fraction
from zoneinfo import ZoneInfo

import pyarrow as pa

from pressmeter import METRICS_VERSION, schemas
from pressmeter.calendar import LocalCalendar, date_to_day, month_of_day
from pressmeter.errors import ConfigError
from pressmeter.metrics import MetricRow, metric_rows
from pressmeter.ranking import (
    DEFAULT_IVT_THRESHOLD,
    Outlet,
    RankedOutlet,
    categories,
    monthly_ranking,
)
from pressmeter.store import Store, quote

__all__ = [
    "CLOSE_AFTER_DAYS",
    "Change",
    "CloseResult",
    "MonthNotDue",
    "Revision",
    "changes_of",
    "close_month",
    "closed_months_touched",
    "closed_ranking",
    "current_ms",
    "inputs_hash",
    "month_last_day",
    "parse_instant",
    "parse_month",
    "refuse_if_not_due",
    "render_status",
    "revisions",
]

CLOSE_AFTER_DAYS = 3
# The frozen figures: every counter of a month row (the §4 columns but the keys
# and ama, which follows from play_ms and the month's minutes).
FIGURES = tuple(f.name for f in fields(MetricRow) if f.name not in ("period", "site_id", "minutes"))
_REVISION_COLUMNS = (
    "month",
    "revision",
    "close_id",
    "closed_ms",
    "inputs_hash",
    "input_runs",
    "metrics_version",
    "list_versions",
    "zone",
    "ranked",
)


class MonthNotDue(ConfigError):
    """The month has not ended plus its allowance yet: it cannot be closed."""


@dataclass(frozen=True)
class Revision:
    """One frozen state of a month (a row of `closed_months`)."""

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

    @property
    def closed_at(self) -> str:
        """When it was closed (as of `--at` when given), UTC, ISO 8601."""
        return f"{dt.datetime.fromtimestamp(self.closed_ms / 1000, dt.UTC):%Y-%m-%dT%H:%M:%SZ}"


@dataclass(frozen=True)
class Change:
    """One figure of one site that a revision changed."""

    site_id: str
    figure: str
    old: int
    new: int

    @property
    def delta(self) -> int:
        return self.new - self.old

    def __str__(self) -> str:
        return f"{self.site_id} {self.figure}: {self.old} -> {self.new} ({self.delta:+d})"


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
        f"SELECT {', '.join(_REVISION_COLUMNS)} FROM closed_months {where}"
        "ORDER BY month, revision, close_id"
    )
    return [Revision(*row) for row in rows]


def frozen_rows(store: Store, revision: Revision, site_id: str | None = None) -> list[MetricRow]:
    """The month rows a revision froze, by site_id."""
    site = f" AND site_id = {quote(site_id)}" if site_id else ""
    return [row for row, _ in _frozen(store, "closed_month_figures", revision, (), site)]


def _frozen(
    store: Store, table: str, revision: Revision, extra: tuple[str, ...], where: str = ""
) -> list[tuple[MetricRow, tuple]]:
    """(month row, values of the `extra` columns) of each row `revision` froze in `table`."""
    minutes = 1440 * month_last_day(parse_month(revision.month)).day
    rows = store.rows(
        f"SELECT {', '.join(('site_id', *FIGURES, *extra))} FROM {table} "
        f"WHERE month = {quote(revision.month)} AND revision = {revision.revision} "
        f"AND close_id = {quote(revision.close_id)}{where} ORDER BY site_id"
    )
    frozen = []
    for site, *values in rows:
        counters = dict(zip(FIGURES, map(int, values)))
        row = MetricRow(revision.month, site, **counters, minutes=minutes)
        frozen.append((row, tuple(values[len(FIGURES) :])))
    return frozen


def _changes(old: list[MetricRow], new: list[MetricRow]) -> tuple[Change, ...]:
    """Per site and figure (by name), what differs between two sets of month rows."""
    before = {row.site_id: row for row in old}
    after = {row.site_id: row for row in new}
    changes = []
    for site in sorted(before.keys() | after.keys()):
        for figure in sorted(FIGURES):
            was = getattr(before[site], figure) if site in before else 0
            now = getattr(after[site], figure) if site in after else 0
            if was != now:
                changes.append(Change(site, figure, was, now))
    return tuple(changes)


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
    the store has no figures of. Run the batch of what is due first.
    """
    first = parse_month(month)
    now_ms = current_ms() if now_ms is None else now_ms
    refuse_if_not_due(month, zone, now_ms)
    figures = metric_rows(store, "month", first, first)
    if not figures:
        raise ConfigError(f"{month}: the store holds no figures of this month; nothing to close")
    digest, runs = inputs_hash(store, first)
    history = revisions(store, month)
    newest = history[-1] if history else None
    changes = _changes(frozen_rows(store, newest), figures) if newest else ()
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
    )
    ranking = monthly_ranking(store, outlets, month, ivt_threshold) if outlets is not None else {}
    _write_revision(store, revision, figures, changes, ranking)
    return CloseResult(revision, written=True, changes=changes)


def _write_revision(
    store: Store,
    revision: Revision,
    figures: list[MetricRow],
    changes: tuple[Change, ...],
    ranking: dict[str, list[RankedOutlet]],
) -> None:
    """Its figures, ranking and changes, then the revision row that makes them count."""
    key = {"month": revision.month, "revision": revision.revision, "close_id": revision.close_id}
    rows = {
        "closed_month_figures": [{**key, **_counters(row)} for row in figures],
        "closed_month_changes": [{**key, **asdict(c), "delta": c.delta} for c in changes],
        "closed_month_ranking": [
            {
                **key,
                **_counters(entry.metrics),
                "category": category,
                "rank": entry.rank,
                "name": entry.outlet.name,
                "flagged": int(entry.flagged),
            }
            for category, ranked in ranking.items()
            for entry in ranked
        ],
    }
    for table, table_rows in rows.items():
        if table_rows:
            store.insert(table, pa.Table.from_pylist(table_rows))
    store.insert("closed_months", pa.Table.from_pylist([asdict(revision)]))


def _counters(row: MetricRow) -> dict[str, object]:
    """A month row's site and FIGURES, as stored."""
    return {"site_id": row.site_id, **{name: getattr(row, name) for name in FIGURES}}


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
    """What `revision` changed against the revision before it."""
    return tuple(
        Change(site, figure, int(old), int(new))
        for site, figure, old, new in store.rows(
            "SELECT site_id, figure, old, new FROM closed_month_changes "
            f"WHERE month = {quote(revision.month)} AND revision = {revision.revision} "
            f"AND close_id = {quote(revision.close_id)} ORDER BY site_id, figure"
        )
    )


def closed_ranking(store: Store, revision: Revision) -> dict[str, list[RankedOutlet]] | None:
    """The ranking `revision` froze, with the figures it showed; None if it has none."""
    if not revision.ranked:
        return None
    ranking: dict[str, list[RankedOutlet]] = {category: [] for category in categories()}
    extra = ("category", "rank", "name", "flagged")
    frozen = _frozen(store, "closed_month_ranking", revision, extra)
    for row, (category, rank, name, flagged) in sorted(frozen, key=lambda pair: pair[1][:2]):
        entry = RankedOutlet(int(rank), Outlet(row.site_id, name, category), row, bool(flagged))
        ranking.setdefault(category, []).append(entry)
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
