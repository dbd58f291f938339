"""What was refused, by day, stage, site and reason: the `pressmeter rejects` query.

Both stages are in one table (rejected_events): the pipeline's own rejects and
the ingest service's dead letters (stage 'ingest'), of committed runs only. A
row counts on the local day it was refused: at ingest, the day the service
received it; in the pipeline, the day its run committed.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from typing import IO, NamedTuple

from pressmeter.calendar import LocalCalendar, day_to_date
from pressmeter.store import COMMITTED, Store, quote

__all__ = ["REJECT_COLUMNS", "RejectCount", "reject_counts", "render_table", "write_csv"]

REJECT_COLUMNS = ("day", "stage", "site_id", "reason", "rejected")
# Instants are grouped in the store by quarter hour, then given their local day
# here: every zone's offset from UTC is a whole number of quarter hours.
_QUARTER_MS = 900_000


class RejectCount(NamedTuple):
    day: dt.date
    stage: str
    site_id: str
    reason: str
    rejected: int


def _refused_sql(site: str | None) -> str:
    only_site = f"AND site_id = {quote(site)}" if site is not None else ""
    return (
        "SELECT intDiv(if(refused_ms > 0, refused_ms, committed_ms), "
        f"{_QUARTER_MS}) AS quarter, toString(stage) AS stage, site_id, "
        "toString(reason) AS reason, count() AS n "
        "FROM rejected_events ANY LEFT JOIN "
        "(SELECT run_id, max(updated_ms) AS committed_ms FROM runs GROUP BY run_id) AS times "
        f"USING run_id WHERE {COMMITTED} {only_site} "
        "GROUP BY quarter, stage, site_id, reason"
    )


def reject_counts(
    store: Store,
    zone: str,
    first: dt.date | None = None,
    last: dt.date | None = None,
    site: str | None = None,
) -> list[RejectCount]:
    """Counts of refused events per local day, stage, site and reason, days from
    `first` to `last` inclusive, sorted in that order."""
    calendar = LocalCalendar(zone)
    totals: Counter[tuple[dt.date, str, str, str]] = Counter()
    for quarter, stage, site_id, reason, n in store.rows(_refused_sql(site)):
        day = day_to_date(calendar.day(int(quarter) * _QUARTER_MS))
        if (first is None or day >= first) and (last is None or day <= last):
            totals[(day, stage, site_id, reason)] += int(n)
    return [RejectCount(*key, n) for key, n in sorted(totals.items())]


def write_csv(rows: list[RejectCount], out: IO[str]) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REJECT_COLUMNS)
    writer.writerows((row.day.isoformat(), *row[1:]) for row in rows)
    return len(rows)


def render_table(rows: list[RejectCount]) -> str:
    """Aligned columns and a total line, for a terminal."""
    cells = [REJECT_COLUMNS] + [(r.day.isoformat(), *r[1:4], f"{r.rejected:,}") for r in rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(REJECT_COLUMNS))]
    lines = [
        "  ".join(
            str(cell).rjust(width) if index == 4 else str(cell).ljust(width)
            for index, (cell, width) in enumerate(zip(row, widths))
        ).rstrip()
        for row in cells
    ]
    total = sum(r.rejected for r in rows)
    lines.append(f"total {total:,} rejected in {len(rows):,} rows")
    return "\n".join(lines)
