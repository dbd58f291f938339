"""Step 3 of METRICS.md §2 and the metrics of §3: IVT, visits, daily facts.

Works on the kept events of one site (all devices whole, sorted by device_id,
ts, event_id), as columns, so a whole site-month is a handful of
vectorised passes rather than a Python loop per event.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa

from pressmeter.calendar import LocalCalendar
from pressmeter.pipelines.coders import typed_outputs
from pressmeter.pipelines.ivt import group_starts, judge_ivt

__all__ = [
    "DEVICE_DAYS",
    "FACT_COLUMNS",
    "VISITS",
    "ComputeSiteFacts",
    "SiteEvents",
    "compute_site_facts",
]

VISIT_GAP_MS = 1_800_000
ENGAGED_CAP_MS = 30_000
PLAYED_CAP_MS = 60_000
ENGAGED_VISIT_MS = 10_000
REACH_MS = 60_000
# Codes of the stored enums (schemas/clickhouse/0002_events.sql).
PAGE_VIEW, ENGAGEMENT, MEDIA = 1, 2, 3
START, END = 1, 4

VISITS = "visits"
DEVICE_DAYS = "device_days"
FACT_COLUMNS = (
    "pageviews",
    "visits",
    "engaged_visits",
    "engaged_ms",
    "media_starts",
    "media_completes",
    "play_ms",
    "counted_events",
    "ivt_events",
    "ivt_ua",
    "ivt_datacenter",
    "ivt_rate",
)


@dataclass(frozen=True)
class SiteEvents:
    """Kept events of one site, devices whole, sorted by (device_id, ts, event_id).

    Columns: device_id (str), device_hash, ts, day, type, ua_ivt, ip_class, value_ms, action
    (enum codes as integers). Facts are wanted for `days` only; the events of the
    days around them are there so that visits crossing midnight are whole.
    """

    site_id: str
    days: frozenset[int]
    columns: pa.Table

    @property
    def nbytes(self) -> int:
        return self.columns.nbytes


def compute_site_facts(
    site: SiteEvents, calendar: LocalCalendar
) -> tuple[list[dict], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(daily fact rows, visit columns, device-day columns) for `site.days`."""
    c = {
        name: site.columns[name].to_numpy()
        for name in site.columns.column_names
        if name != "device_id"
    }
    device_id = site.columns["device_id"]
    ts, day = c["ts"].astype(np.int64), c["day"].astype(np.int64)
    kind, action, value = c["type"], c["action"], c["value_ms"].astype(np.int64)
    # Sorted by device: a new device starts where the id's hash changes (a 64-bit
    # hash equal for two ids that happen to sort side by side is not a concern).
    device = np.cumsum(group_starts(c["device_hash"])) - 1
    page_view, engagement, media = kind == PAGE_VIEW, kind == ENGAGEMENT, kind == MEDIA

    ivt = judge_ivt(c["ua_ivt"], c["ip_class"], device, ts, day, page_view, calendar)
    ua, datacenter, rate, counted = ivt.ua, ivt.datacenter, ivt.rate, ivt.counted
    engaged_ms = np.where(engagement, np.minimum(value, ENGAGED_CAP_MS), 0)
    play_ms = np.where(media, np.minimum(value, PLAYED_CAP_MS), 0)

    # Visits: counted events of a device, a new one after a gap of more than 30 min.
    rows = np.flatnonzero(counted)
    gap = np.zeros(len(rows), dtype=bool)
    gap[1:] = np.diff(ts[rows]) > VISIT_GAP_MS
    visit_start = group_starts(device[rows]) | gap
    visit = np.cumsum(visit_start) - 1
    first = rows[visit_start]
    last = (
        rows[np.append(np.flatnonzero(visit_start)[1:] - 1, len(rows) - 1)] if len(rows) else rows
    )
    visit_pageviews = np.bincount(visit, weights=page_view[rows]).astype(np.int64)
    visit_engaged = np.bincount(visit, weights=engaged_ms[rows]).astype(np.int64)
    visit_played = np.bincount(visit, weights=play_ms[rows]).astype(np.int64)
    visit_events = np.bincount(visit).astype(np.int64)
    is_engaged = (
        (visit_pageviews >= 2)
        | (visit_engaged >= ENGAGED_VISIT_MS)
        | (visit_played >= ENGAGED_VISIT_MS)
    )
    visit_day = day[first]

    # Device-days: the basis of visitors and media reach.
    dd_start = np.flatnonzero(group_starts(device[rows], day[rows]))
    dd_rows = rows[dd_start]
    dd_events = np.diff(np.append(dd_start, len(rows)))
    dd_played = np.add.reduceat(play_ms[rows], dd_start) if len(rows) else dd_start

    facts = _daily_rows(
        site,
        day,
        counted,
        {
            "pageviews": counted & page_view,
            "engaged_ms": np.where(counted, engaged_ms, 0),
            "media_starts": counted & media & (action == START),
            "media_completes": counted & media & (action == END),
            "play_ms": np.where(counted, play_ms, 0),
            "counted_events": counted,
            "ivt_events": ~counted,
            "ivt_ua": ua,
            "ivt_datacenter": datacenter,
            "ivt_rate": rate,
        },
        visit_day,
        is_engaged,
    )

    wanted_visits = np.isin(visit_day, list(site.days))
    visits = {
        "site_id": np.full(int(wanted_visits.sum()), site.site_id, dtype=object),
        "day": visit_day[wanted_visits],
        "device_id": device_id.take(pa.array(first[wanted_visits])),
        "start_ts": ts[first][wanted_visits],
        "end_ts": ts[last][wanted_visits],
        "events": visit_events[wanted_visits],
        "pageviews": visit_pageviews[wanted_visits],
        "engaged_ms": visit_engaged[wanted_visits],
        "play_ms": visit_played[wanted_visits],
        "engaged": is_engaged[wanted_visits].astype(np.uint8),
    }
    wanted_dd = np.isin(day[dd_rows], list(site.days))
    device_days = {
        "site_id": np.full(int(wanted_dd.sum()), site.site_id, dtype=object),
        "day": day[dd_rows][wanted_dd],
        "device_id": device_id.take(pa.array(dd_rows[wanted_dd])),
        "counted_events": dd_events[wanted_dd],
        "play_ms": np.asarray(dd_played)[wanted_dd],
    }
    return facts, visits, device_days


def _daily_rows(
    site: SiteEvents,
    day: np.ndarray,
    counted: np.ndarray,
    per_event: dict[str, np.ndarray],
    visit_day: np.ndarray,
    is_engaged: np.ndarray,
) -> list[dict]:
    """One fact row per wanted day that has counted or IVT events."""
    if not len(day):
        return []
    first_day = int(day.min())
    width = int(day.max()) - first_day + 1

    def by_day(days: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(days - first_day, weights=weights, minlength=width).astype(np.int64)

    sums = {name: by_day(day, weights) for name, weights in per_event.items()}
    sums["visits"] = by_day(visit_day)
    sums["engaged_visits"] = by_day(visit_day, is_engaged)
    rows = []
    for d in sorted(site.days):
        i = d - first_day
        if 0 <= i < width and (sums["counted_events"][i] or sums["ivt_events"][i]):
            row = {"site_id": site.site_id, "day": d}
            row.update({name: int(sums[name][i]) for name in FACT_COLUMNS})
            rows.append(row)
    return rows


class ComputeSiteFactsFn(beam.DoFn):
    """SiteEvents → daily fact rows (main), visits and device-days (tagged tables)."""

    def __init__(self, zone: str) -> None:
        self.zone = zone

    def setup(self) -> None:
        self._calendar = LocalCalendar(self.zone)

    def process(self, site: SiteEvents) -> Iterator[object]:
        facts, visits, device_days = compute_site_facts(site, self._calendar)
        yield from facts
        if len(visits["day"]):
            yield beam.pvalue.TaggedOutput(VISITS, pa.table(visits))
        if len(device_days["day"]):
            yield beam.pvalue.TaggedOutput(DEVICE_DAYS, pa.table(device_days))


class ComputeSiteFacts(beam.PTransform):
    """Per site: IVT, visits and the day's facts; partial facts summed per site-day."""

    def __init__(self, zone: str) -> None:
        super().__init__()
        self.zone = zone

    def expand(self, sites: beam.PCollection) -> dict[str, beam.PCollection]:
        outputs = sites | "IvtVisitsFacts" >> beam.ParDo(
            ComputeSiteFactsFn(self.zone)
        ).with_outputs(VISITS, DEVICE_DAYS, main="facts")
        typed_outputs(outputs, **{VISITS: pa.Table, DEVICE_DAYS: pa.Table})
        facts = (
            outputs.facts
            | "KeyBySiteDay" >> beam.Map(lambda row: ((row["site_id"], row["day"]), row))
            | "SumPartials" >> beam.CombinePerKey(_sum_fact_rows)
            | "DropKey" >> beam.Values()
        )
        return {"facts": facts, VISITS: outputs[VISITS], DEVICE_DAYS: outputs[DEVICE_DAYS]}


def _sum_fact_rows(rows: Iterator[dict]) -> dict:
    """Facts of one site-day from several device buckets (all counters add up)."""
    total: dict = {}
    for row in rows:
        if not total:
            total = dict(row)
        else:
            for name in FACT_COLUMNS:
                total[name] += row[name]
    return total
