"""What `metrics export` and `ranking` report: a closed month's newest frozen
revision (pressmeter/closing.py) unless the newest figures are asked for, and
what every figure is (docs/standard.md §5).

A figure is `preliminary` while its period can still receive events: until the
period's end plus the ts window of §2 (72 h), after which ingest accepts no event
of it. It is then `final` (final for now: only a late batch of events received
in time but counted later can still change it), and a closed month's figures are
`closed-rN`, frozen by revision N. The §4 CSV keeps its columns exactly; the
status is one more column only when asked for (`--with-status`), and one line
under each ranking (of outlets and of channels).
"""

from __future__ import annotations

import csv
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import IO, TypeVar

from pressmeter import closing, schemas
from pressmeter.calendar import LocalCalendar, date_to_day
from pressmeter.errors import ConfigError
from pressmeter.metrics import EXPORT_COLUMNS, MetricRow, metric_rows
from pressmeter.ranking import (
    DEFAULT_IVT_THRESHOLD,
    Outlet,
    RankedChannel,
    RankedOutlet,
    channel_ranking,
    monthly_ranking,
)
from pressmeter.store import Store

__all__ = [
    "ReportedRow",
    "final_at_ms",
    "reported_channels",
    "reported_ranking",
    "reported_rows",
    "write_csv_with_status",
]

# A ranking as reported: of outlets or of channels, per category.
Ranking = TypeVar("Ranking", dict[str, list[RankedOutlet]], dict[str, list[RankedChannel]])


def final_at_ms(last: dt.date, zone: str) -> int:
    """When figures of a period ending on `last` are final for now: its end plus the
    ts window of §2 (no valid event of it can be received later)."""
    window = schemas.load_schema(schemas.EVENT_SCHEMA)["x-pressmeter-ts-window"]
    return LocalCalendar(zone).day_start_ms(date_to_day(last) + 1) + int(window["before_ms"])


@dataclass(frozen=True)
class ReportedRow:
    """An export row and what it is: `preliminary` (its period may still receive
    events), `final` (final for now: only a late batch can change it) or
    `closed-rN` (the figures revision N of a closed month froze)."""

    row: MetricRow
    status: str


def reported_rows(
    store: Store,
    zone: str,
    grain: str = "day",
    first: dt.date | None = None,
    last: dt.date | None = None,
    site_id: str | None = None,
    newest: bool = False,
    now_ms: int | None = None,
) -> list[ReportedRow]:
    """The export as it is reported: a closed month shows its newest revision's
    frozen figures, unless `newest` asks for the figures the store computes now."""
    now_ms = closing.current_ms() if now_ms is None else now_ms
    live = metric_rows(store, grain, first, last, site_id)
    closed: dict[str, closing.Revision] = {}
    if grain == "month" and not newest:
        for revision in closing.revisions(store):  # ordered: the newest of each month wins
            if (not first or revision.month >= f"{first:%Y-%m}") and (
                not last or revision.month <= f"{last:%Y-%m}"
            ):
                closed[revision.month] = revision
    reported = [
        ReportedRow(row, _live_status(row.period, grain, zone, now_ms))
        for row in live
        if row.period not in closed
    ]
    for revision in closed.values():
        status = f"closed-r{revision.revision}"
        reported += [
            ReportedRow(row, status) for row in closing.frozen_rows(store, revision, site_id)
        ]
    return sorted(reported, key=lambda r: (r.row.period, r.row.site_id))


def _live_status(period: str, grain: str, zone: str, now_ms: int) -> str:
    last = (
        closing.month_last_day(closing.parse_month(period))
        if grain == "month"
        else dt.date.fromisoformat(period)
    )
    return "final" if now_ms >= final_at_ms(last, zone) else "preliminary"


def reported_ranking(
    store: Store,
    month: str,
    zone: str,
    outlets: dict[str, Outlet] | None,
    newest: bool = False,
    now_ms: int | None = None,
    ivt_threshold: Fraction = DEFAULT_IVT_THRESHOLD,
) -> tuple[dict[str, list[RankedOutlet]], str]:
    """The ranking as it is reported, and one line saying what its figures are: a
    closed month's newest frozen ranking, unless `newest` asks for the ranking of
    the figures the store computes now (which needs the outlet registry)."""
    return _reported(
        store,
        month,
        zone,
        newest,
        now_ms,
        lambda revision: closing.closed_ranking(store, revision),
        lambda: monthly_ranking(store, _registry(outlets), month, ivt_threshold),
        "ranking",
    )


def reported_channels(
    store: Store,
    month: str,
    zone: str,
    outlets: dict[str, Outlet] | None,
    newest: bool = False,
    now_ms: int | None = None,
) -> tuple[dict[str, list[RankedChannel]], str]:
    """The channel ranking as it is reported, and its status line, as `reported_ranking`."""
    return _reported(
        store,
        month,
        zone,
        newest,
        now_ms,
        lambda revision: closing.closed_channel_ranking(store, revision),
        lambda: channel_ranking(store, _registry(outlets), month),
        "channel ranking",
    )


def _registry(outlets: dict[str, Outlet] | None) -> dict[str, Outlet]:
    if outlets is None:
        raise ConfigError("no outlet registry: give --outlets FILE or set PM_OUTLETS")
    return outlets


def _reported(
    store: Store,
    month: str,
    zone: str,
    newest: bool,
    now_ms: int | None,
    frozen: Callable[[closing.Revision], Ranking | None],
    computed: Callable[[], Ranking],
    what: str,
) -> tuple[Ranking, str]:
    """A closed month's newest frozen `what` (unless `newest`), or the one computed
    now; and the status line of its figures."""
    history = closing.revisions(store, closing.parse_month(month).strftime("%Y-%m"))
    if history and not newest:
        r = history[-1]
        table = frozen(r)
        if table is None:
            why = (
                f"revision {r.revision} was closed before channel rankings were frozen"
                if r.ranked
                else "was closed without an outlet registry"
            )
            raise ConfigError(
                f"{month} {why}, so no {what} was frozen; "
                "--newest ranks the figures as computed now"
            )
        return table, (
            f"status: closed, revision {r.revision} frozen {r.closed_at} "
            f"(inputs sha256:{r.inputs_hash})"
        )
    table = computed()
    now_ms = closing.current_ms() if now_ms is None else now_ms
    if history:
        line = f"status: newest figures; the month is closed, revision {history[-1].revision}"
    elif _live_status(month, "month", zone, now_ms) == "final":
        line = "status: final for now (not closed yet: a late batch can still change it)"
    else:
        line = "status: preliminary (the month can still receive events)"
    return table, line


def write_csv_with_status(rows: Iterable[ReportedRow], out: IO[str]) -> int:
    """The §4 CSV with one more column, `status`; returns the number of data rows."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow((*EXPORT_COLUMNS, "status"))
    count = 0
    for reported in rows:
        writer.writerow([*reported.row.as_csv(), reported.status])
        count += 1
    return count
