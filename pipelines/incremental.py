"""Incremental facts: what a run recomputes, how it reads it, and how the
site-day figures are summed from the devices' contributions.

Every figure of §3 and §8 decomposes by device (docs/standard.md §3, §8):
visits, engaged visits, SIVT-RATE, page views, engaged and played time are per
device and day; visitors and reach are counts of devices. So a run recomputes
only the devices it stored events of, on the days it touched and the day either
side where a visit may cross the midnight between them (a new event can join or
split a visit across midnight: pipelines/facts.py, `recomputed_device_days`),
and writes their rows (device_days, device_values). A device-day's current row is its newest
committed run's; each touched site-day's new generation is then its previous one
with the recomputed devices' rows in place of their old ones
(pipelines/generations.py). The cost of a run follows the devices it touched,
not the events stored.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pressmeter.calendar import day_to_date
from pressmeter.pipelines.facts import SiteEvents
from pressmeter.pipelines.ivt import BotMatcher
from pressmeter.store import (
    COMMITTED,
    Store,
    open_store,
    quote,
)
from pressmeter.store.tables import DEVICES_WITH_HISTORY

__all__ = [
    "FactsPartition",
    "FactsScope",
    "ReadSiteEventsFn",
    "SiteDays",
    "devices_with_history",
    "plan_facts",
]

# Events per facts partition: bounds the memory of one site's recomputation.
PARTITION_EVENTS = 1_000_000
# The stored fields the §8 rows are computed from (pipelines/breakdowns.py).
_BREAKDOWN_FIELDS = (
    "section, content_id, channel_id, stream, province, device_type, referrer_host, url_host, "
)


@dataclass(frozen=True)
class SiteDays:
    """One site and the day range to read for its wanted days."""

    site_id: str
    first_day: int
    last_day: int


def _date(day: int) -> str:
    return f"toDate('{day_to_date(day).isoformat()}')"


def _within(sites: Sequence[SiteDays]) -> str:
    """SQL: rows of these sites, each within its own day range.

    The ranges are looked up per row with transform() rather than OR-ing one
    condition per site: with 50 sites that was 50 comparisons a row and 0.3 s
    per million rows read (chDB). The outer day range lets the store skip
    partitions; site_id IN lets it use the sort key.
    """
    names = ", ".join(quote(site.site_id) for site in sites)
    firsts = ", ".join(str(site.first_day) for site in sites)
    lasts = ", ".join(str(site.last_day) for site in sites)
    first, last = min(site.first_day for site in sites), max(site.last_day for site in sites)
    return (
        f"site_id IN ({names}) AND day BETWEEN {_date(first)} AND {_date(last)} "
        f"AND toUInt16(day) BETWEEN transform(site_id, [{names}], "
        f"CAST([{firsts}] AS Array(UInt16)), toUInt16(0)) "
        f"AND transform(site_id, [{names}], CAST([{lasts}] AS Array(UInt16)), toUInt16(0))"
    )


@dataclass(frozen=True)
class FactsScope:
    """What a facts phase recomputes: the devices of the events `touched` selects
    (SQL), on those events' days, and with `beside` the day either side where a
    visit may cross the midnight between them (a run's new events can join or
    split a visit across midnight; a recomputation of chosen days recomputes
    those days only)."""

    touched: str
    beside: bool = True
    # Whether a device of the scope has committed rows in the days read (the plan
    # knows, `plan_facts`): if none, a run's stored rows are not read at all.
    history: bool = True

    @classmethod
    def of_run(cls, run_id: str) -> FactsScope:
        """The devices a run stored events of, each on the days it touched ± 1."""
        return cls(f"run_id = {quote(run_id)}")

    def wanted(self, days: list[int]) -> frozenset[int]:
        deltas = (-1, 0, 1) if self.beside else (0,)
        return frozenset(d + delta for d in days for delta in deltas)

    def join(self, among: str) -> str:
        """SQL: the JOIN that gives each event read its device's touched days
        (`touched_days`), for a run's scope; '' for a recomputation.

        One row per touched device rather than a set of (site, device, day)
        for each touched day and shift: the IN set of a 300,000-event run held
        1.5 million tuples, and building it cost more than reading the events.
        Only the devices `among` selects (a partition's sites and bucket) are
        joined: the join is held in memory, and the whole run's devices in each
        partition's query took 0.5 GB more at 5M events.
        """
        if not self.beside:
            return ""
        return (
            "ALL INNER JOIN (SELECT site_id, device_id, groupUniqArray(toInt32(day)) AS "
            f"touched_days FROM events WHERE {self.touched} AND {among} "
            "GROUP BY site_id, device_id) AS touched USING (site_id, device_id)"
        )

    def _near_touched(self, reach: int) -> str:
        """SQL: the event's day is within `reach` days of one its device touched."""
        return f"arrayExists(d -> abs(d - toInt32(day)) <= {reach}, touched_days)"

    def devices(self, run_id: str) -> str:
        """SQL, beside `join()`: the events to read for run `run_id`: a run's
        touched devices on their own wanted days and the day either side of
        those (visits across midnight whole); every device of the chosen days
        for a recomputation (its read range adds the day either side).

        A run's device without committed rows there has no other events to read
        than the run's own, which are one range of the events' sort key
        (0014_run_sorted_rows.sql); only the devices with history
        (`record_devices_with_history`) are looked for among the stored events.
        A run of 100,000 events of new devices into 5,000,000 stored read them
        all to find its own.
        """
        if not self.beside:
            return (
                f"(site_id, device_id) IN "
                f"(SELECT site_id, device_id FROM events WHERE {self.touched})"
            )
        if not self.history:
            return f"{self.touched} AND {self._near_touched(2)}"
        return (
            f"{self._near_touched(2)} AND "
            f"({self.touched} OR (site_id, device_id) IN ({devices_with_history(run_id)}))"
        )

    def event_counts(self, sites: Sequence[SiteDays], run_id: str) -> str:
        """SQL: per site, how many events a partition of these sites reads for
        run `run_id` (to pack the partitions).

        For a run's scope, the stored events are counted from device_days, a
        third the size of events: a device-day's current row holds every
        committed event of it, counted or not (counted_events + ivt_events;
        events are only ever added, so its newest row has the most). The
        run's own events are counted from events, where they are one range of
        the sort key, and its own device_days rows, once written, are left
        out. 100,000 events of devices with history into 5M stored: 4.4 s by
        events, 1.2 s this way (chDB).
        """
        among = _within(sites)
        if not self.beside:
            return (
                f"SELECT site_id, count() FROM events WHERE {among} AND {_visible(run_id)} "
                f"AND {self.devices(run_id)} GROUP BY site_id"
            )
        own = (
            f"SELECT site_id, count() AS events FROM events WHERE {self.touched} AND {among} "
            "GROUP BY site_id"
        )
        if not self.history:
            return own
        return (
            f"SELECT site_id, sum(events) FROM ({own} UNION ALL "
            f"SELECT site_id, max(counted_events + ivt_events) AS events FROM device_days "
            f"{self.join(among)} WHERE {among} AND {COMMITTED} AND NOT ({self.touched}) "
            f"AND (site_id, device_id) IN ({devices_with_history(run_id)}) "
            f"AND {self._near_touched(2)} "
            "GROUP BY site_id, day, device_id) GROUP BY site_id"
        )

    def recomputed_sql(self) -> str:
        """SQL, per event read: whether its device-day is one the scope recomputes
        (`touched`), and whether it is within a day of one (`beside`: the day
        before or after is recomputed where a visit may cross the midnight
        between them, `recomputed_device_days` in pipelines/facts.py)."""
        if not self.beside:
            return f"{self.touched} AS touched, 0 AS beside"
        return f"has(touched_days, toInt32(day)) AS touched, {self._near_touched(1)} AS beside"


def devices_with_history(run_id: str) -> str:
    """SQL: (site_id, device_id) of the devices of run `run_id`'s scope that had
    committed rows in the days it reads (`record_devices_with_history`)."""
    return (
        f"SELECT site_id, device_id FROM {DEVICES_WITH_HISTORY.name} WHERE run_id = {quote(run_id)}"
    )


def record_devices_with_history(
    store: Store, run_id: str, scope: FactsScope, sites: Sequence[SiteDays]
) -> bool:
    """devices_with_history: the devices of the scope with committed device_days
    rows of other runs in the sites' day ranges; whether there is one.

    Every stored event has the device_days row of its run (pipelines/facts.py),
    and device_days is a third the size of events, so one pass over it finds
    them; the plan's counts, each partition's read and the new generation's
    replaced rows (pipelines/generations.py) then read them as one range
    (0015_devices_with_history.sql) instead of passing over device_days again.
    """
    among = _within(sites)
    store.execute(
        f"INSERT INTO {DEVICES_WITH_HISTORY.name} ({DEVICES_WITH_HISTORY.list()}) "
        f"SELECT DISTINCT {quote(run_id)}, site_id, device_id FROM device_days "
        f"WHERE {among} AND {COMMITTED} AND run_id != {quote(run_id)} AND (site_id, device_id) IN "
        f"(SELECT site_id, device_id FROM events WHERE {scope.touched} AND {among})"
    )
    return bool(store.rows(f"SELECT count() FROM ({devices_with_history(run_id)})")[0][0])


def _visible(run_id: str) -> str:
    """SQL: rows of committed runs, and this run's own."""
    return f"({COMMITTED} OR run_id = {quote(run_id)})"


@dataclass(frozen=True)
class FactsPartition:
    """What one facts worker reads: the touched devices of whole sites, or of one
    device bucket of a big site."""

    sites: tuple[SiteDays, ...]
    scope: FactsScope
    bucket: int = 0
    buckets: int = 1

    def _among(self) -> str:
        """SQL: rows of this partition's sites (in their day ranges) and bucket."""
        if self.buckets == 1:
            return _within(self.sites)
        return f"{_within(self.sites)} AND cityHash64(device_id) % {self.buckets} = {self.bucket}"

    def where(self, run_id: str) -> str:
        return f"{self._among()} AND {_visible(run_id)} AND {self.scope.devices(run_id)}"

    def sql(self, run_id: str, breakdowns: bool = True) -> str:
        """SQL: the partition's events in device order; the §8 fields only for
        `breakdowns` (text columns: 0.8 s of the store's CPU per million events)."""
        return (
            "SELECT site_id, device_id, cityHash64(device_id) AS device_hash, ts, day, "
            "CAST(type AS Int8) AS type, ua_ivt, ua_id, "
            "CAST(ip_class AS Int8) AS ip_class, value_ms, CAST(action AS Int8) AS action, "
            f"{_BREAKDOWN_FIELDS if breakdowns else ''}{self.scope.recomputed_sql()} "
            f"FROM events {self.scope.join(self._among())} WHERE {self.where(run_id)} "
            "ORDER BY site_id, device_id, ts, event_id"
        )


def bot_verdicts(store: Store, table: pa.Table) -> np.ndarray:
    """§2 step 3 GIVT-UA under the current bot list, per event: each distinct
    stored user agent judged once; rows stored before user agents were kept
    (ua_id 0) keep the verdict taken at ingest."""
    is_bot = BotMatcher()
    # Hashed, not sorted (np.unique): 0.2-0.3 s less per million events.
    encoded = pc.dictionary_encode(table["ua_id"].combine_chunks())
    distinct, inverse = encoded.dictionary.to_numpy(), encoded.indices.to_numpy()
    # Sent as text: a probe's integers are Int64, and ids use all 64 bits.
    agents = store.rows(
        "SELECT ua_id, any(ua) FROM user_agents "
        "WHERE ua_id IN (SELECT toUInt64(id) FROM {probe}) GROUP BY ua_id",
        {"id": [str(u) for u in distinct.tolist()]},
    )
    verdict = {int(ua_id): is_bot(ua) for ua_id, ua in agents}
    judged = np.fromiter((verdict.get(int(u), -1) for u in distinct), np.int8, len(distinct))
    per_event = judged[inverse]
    return np.where(per_event < 0, table["ua_ivt"].to_numpy(), per_event).astype(np.uint8)


class ReadSiteEventsFn(beam.DoFn):
    """FactsPartition → one SiteEvents per site, read from the store in device order
    (without the §8 fields unless `breakdowns`)."""

    def __init__(self, store_url: str, run_id: str, breakdowns: bool = True) -> None:
        self.store_url, self.run_id, self.breakdowns = store_url, run_id, breakdowns

    def process(self, part: FactsPartition) -> Iterator[SiteEvents]:
        store = open_store(self.store_url)
        table = store.table(part.sql(self.run_id, self.breakdowns))
        if not table.num_rows:
            return
        table = table.append_column("ua_bot", pa.array(bot_verdicts(store, table))).drop(
            ["ua_ivt", "ua_id"]
        )
        site_ids = pc.dictionary_encode(table["site_id"]).combine_chunks()
        codes = site_ids.indices.to_numpy()
        bounds = [0, *(np.flatnonzero(codes[1:] != codes[:-1]) + 1).tolist(), len(codes)]
        for start, stop in itertools.pairwise(bounds):
            site = site_ids.dictionary[codes[start]].as_py()
            yield SiteEvents(site, table.slice(start, stop - start).drop(["site_id"]))


def plan_facts(store: Store, run_id: str, scope: FactsScope) -> list[FactsPartition]:
    """The site-days in scope, and the events of its devices to read for them,
    packed into partitions of at most PARTITION_EVENTS events (few queries,
    bounded memory). The events of a run's facts phase are those of committed
    runs and its own."""
    touched = store.rows(
        f"SELECT site_id, groupUniqArray(toUInt32(day)) FROM events "
        f"WHERE {scope.touched} GROUP BY site_id ORDER BY site_id"
    )
    if not touched:
        return []
    sites = []
    for site_id, days in touched:
        wanted = scope.wanted(days)
        sites.append(SiteDays(site_id, min(wanted) - 1, max(wanted) + 1))
    scope = dataclasses.replace(
        scope, history=record_devices_with_history(store, run_id, scope, sites)
    )
    counts: dict[str, int] = dict.fromkeys((s.site_id for s in sites), 0)
    for site_id, count in store.rows(scope.event_counts(sites, run_id)):
        counts[site_id] = int(count)
    return _pack(sites, counts, scope)


def _pack(sites: list[SiteDays], counts: dict[str, int], scope: FactsScope) -> list[FactsPartition]:
    """Sites into partitions of at most PARTITION_EVENTS events; a bigger site
    into device buckets."""
    partitions: list[FactsPartition] = []
    group: list[SiteDays] = []
    size = 0
    for site in sites:
        if counts[site.site_id] > PARTITION_EVENTS:
            buckets = math.ceil(counts[site.site_id] / PARTITION_EVENTS)
            partitions += [FactsPartition((site,), scope, b, buckets) for b in range(buckets)]
            continue
        if size + counts[site.site_id] > PARTITION_EVENTS:
            partitions.append(FactsPartition(tuple(group), scope))
            group, size = [], 0
        group.append(site)
        size += counts[site.site_id]
    if group:
        partitions.append(FactsPartition(tuple(group), scope))
    return partitions
