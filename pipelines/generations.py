"""A touched site-day's new generation of figures, sketches and §8 rows, from its
previous generation and the device-days the run recomputed.

Every figure of docs/standard.md §3 and §8 is a sum over devices or a count of
devices (pipelines/incremental.py). A run replaces the current rows of the
device-days it recomputed (`replaced_device_days` records whose), so a site-day's
new additive figures are the previous generation's, less the replaced rows, plus
the new ones: the cost follows the devices recomputed, not the devices stored.
Summing every device of the touched site-days instead cost a 100,000-event run
3.7 s of its 5.5 s facts phase into a store of 5,000,000 events.

A distinct-count sketch can take members, not lose one. Where a recomputed device
left a sketch (its events no longer counted, its play no longer reaching
`REACH_MS`, no longer with a §8 value), that sketch is rebuilt from every current
row of its site-day (`rebuilt_sketches` records which). Merged from stored states
or built at once, a sketch of the same devices gives the same estimate on both
stores, so the figures do not depend on how the traffic was cut into runs
(tests/test_incremental.py compares five runs with one).

The touched days are summed a group at a time (`FINISH_DEVICE_DAYS` recomputed
device-days at most), so the store's memory for the sums follows that setting,
not the size of the run: a site-day's figures depend only on its own rows.
"""

from __future__ import annotations

import logging

import pyarrow as pa

from pressmeter import METRICS_VERSION, schemas
from pressmeter.calendar import day_to_date
from pressmeter.pipelines.incremental import devices_with_history
from pressmeter.pipelines.visits import REACH_MS
from pressmeter.store import COMMITTED, Store, current_device_days, current_devices, quote
from pressmeter.store.tables import (
    ADDITIVE_FIGURES,
    DAILY_BREAKDOWNS,
    DAILY_FACTS,
    DAILY_SKETCHES,
    FACT_FIGURES,
    FACT_LISTS,
    REBUILT_SKETCHES,
    REPLACED_DEVICE_DAYS,
)

__all__ = ["finish_facts"]

log = logging.getLogger(__name__)

# Past this share of the touched site-days' devices replaced, the site-days are
# summed whole: device_values holds a device's rows last in its sort key (after
# dimension and value), so the replaced rows are found only by reading their
# runs' whole site-days; 100,000 events of returning devices over 5M stored took
# 74 s by difference, 38 s whole (bench/incremental_facts.py, 0014 layout).
WHOLE_SHARE = 0.1

_VALUE_KEY = "site_id, day, dimension, value"

# Recomputed device-days whose site-days are summed in one go, at most (a day
# with more alone): bounds the store's memory for the sums of a big run.
FINISH_DEVICE_DAYS = 1_000_000


class _Run:
    """The SQL conditions of one run's site-day sums."""

    def __init__(self, run_id: str, days: str, replaced: bool = True, whole: bool = False) -> None:
        """`days`: the SQL condition on `day` of the group of touched days summed.
        `replaced`: whether the run replaced any row; if not, the conditions on
        replaced and rebuilt rows are false, and the store reads nothing for them
        (a device's device_values rows are not one range of its sort key). `whole`: the
        site-days summed over all their devices' current rows, as if none had a
        previous generation."""
        self.run_id, self.id, self.days = run_id, quote(run_id), days
        self.whole = whole
        # The site-days the run recomputed devices of.
        self.touched = (
            "(site_id, day) IN "
            f"(SELECT DISTINCT site_id, day FROM device_days WHERE run_id = {self.id} AND {days})"
        )
        # Rows of committed runs and of this run's own.
        self.visible = f"{self.touched} AND ({COMMITTED} OR run_id = {self.id})"
        # Rows of the previous generation of each touched site-day.
        self.previous = (
            f"{self.touched} AND (site_id, day, run_id) IN "
            "(SELECT site_id, day, run_id FROM current_generations)"
        )
        # The device rows summed in: the run's own, or every current one.
        self.added = f"run_id = {self.id} AND {days}"
        self.replaced = self.rebuilt_days = self.rebuilt_values = self.rebuilt_value_days = "0"
        if whole:
            self.previous = "0"
            self.added = (
                f"{self.visible} AND (site_id, day, device_id, run_id) IN "
                f"({current_devices(self.visible)})"
            )
        if whole or not replaced:
            return
        # device_days and device_values rows this run's rows replace.
        self.replaced = (
            f"{self.touched} AND (site_id, day, device_id, run_id) IN "
            "(SELECT site_id, day, device_id, replaced_run FROM replaced_device_days "
            f"WHERE run_id = {self.id} AND {days})"
        )
        rebuilt = f"FROM rebuilt_sketches WHERE run_id = {self.id} AND {days}"
        self.rebuilt_days = (
            f"((site_id, day) IN (SELECT site_id, day {rebuilt} AND dimension = ''))"
        )
        self.rebuilt_values = (
            f"(({_VALUE_KEY}) IN (SELECT {_VALUE_KEY} {rebuilt} AND dimension != ''))"
        )
        self.rebuilt_value_days = (
            f"((site_id, day) IN (SELECT site_id, day {rebuilt} AND dimension != ''))"
        )


def _signed(figures: tuple[str, ...], sign: str = "") -> str:
    """SQL: the figures as Int64 (`sign` '-' to subtract), named d_<figure>."""
    return ", ".join(f"{sign}toInt64({name}) AS d_{name}" for name in figures)


def _summed(figures: tuple[str, ...]) -> str:
    return ", ".join(f"toUInt64(sum(d_{name}))" for name in figures)


def finish_facts(store: Store, run_id: str, breakdowns: bool = True) -> None:
    """The touched site-days' new generation: figures, sketches and (with
    `breakdowns`) §8 rows, the versions of the lists applied, and the
    generations that make them current."""
    groups = _day_groups(store, run_id)
    for number, days in enumerate(groups, 1):
        if len(groups) > 1:
            log.info("run %s: summing the site-days of group %d/%d", run_id, number, len(groups))
        _finish_days(store, _Run(run_id, days), breakdowns)
    versions = schemas.list_versions()
    store.insert(
        FACT_LISTS.name,
        pa.table(
            {
                "run_id": [run_id] * len(versions),
                "list": list(versions),
                "version": list(versions.values()),
            }
        ),
    )
    store.execute(
        "INSERT INTO fact_generations (site_id, day, run_id) "
        f"SELECT DISTINCT site_id, day, run_id FROM daily_facts WHERE run_id = {quote(run_id)}"
    )


def _day_groups(store: Store, run_id: str) -> list[str]:
    """SQL conditions on `day`: the run's touched days in consecutive groups of at
    most FINISH_DEVICE_DAYS recomputed device-days (a bigger day alone), summed
    one group at a time."""
    groups: list[list[int]] = []
    size = 0
    for day, count in store.rows(
        f"SELECT toInt32(day), count() FROM device_days WHERE run_id = {quote(run_id)} "
        "GROUP BY day ORDER BY day"
    ):
        if not groups or size + count > FINISH_DEVICE_DAYS:
            groups.append([])
            size = 0
        groups[-1].append(day)
        size += count
    return [
        f"day BETWEEN toDate('{day_to_date(days[0])}') AND toDate('{day_to_date(days[-1])}')"
        for days in groups
    ]


def _finish_days(store: Store, run: _Run, breakdowns: bool) -> None:
    """One group's new generation: by difference, or summed whole where the run
    replaced many of its devices' rows or the previous rows have no §8 rows."""
    _record_replaced(store, run)
    replaced = store.rows(
        f"SELECT count() FROM replaced_device_days WHERE run_id = {run.id} AND {run.days}"
    )[0][0]
    if (replaced and replaced > WHOLE_SHARE * _devices(store, run)) or (
        breakdowns and _previous_without_breakdowns(store, run)
    ):
        log.info(
            "run %s: touched site-days summed whole (%d device-days replaced)", run.run_id, replaced
        )
        run = _Run(run.run_id, run.days, whole=True)
    elif replaced:
        _record_rebuilt_sketches(store, run, breakdowns)
    else:
        run = _Run(run.run_id, run.days, replaced=False)
    _sum_facts(store, run)
    _sum_sketches(store, run)
    if breakdowns:
        _sum_breakdowns(store, run)


def _devices(store: Store, run: _Run) -> int:
    """About how many devices the touched site-days hold (for WHOLE_SHARE)."""
    return store.rows(f"SELECT uniq(site_id, day, device_id) FROM device_days WHERE {run.touched}")[
        0
    ][0]


def _record_replaced(store: Store, run: _Run) -> None:
    """replaced_device_days: the current row, before this run, of each device-day
    it recomputed (its newest committed run's); none for a device new there, so
    only the devices the plan found with history are looked up."""
    store.execute(
        f"INSERT INTO {REPLACED_DEVICE_DAYS.name} ({REPLACED_DEVICE_DAYS.list()}) "
        f"SELECT {run.id}, site_id, day, device_id, max(run_id) FROM device_days "
        f"WHERE {run.touched} AND {COMMITTED} "
        f"AND (site_id, device_id) IN ({devices_with_history(run.run_id)}) "
        "AND (site_id, day, device_id) IN "
        f"(SELECT site_id, day, device_id FROM device_days WHERE run_id = {run.id}) "
        "GROUP BY site_id, day, device_id"
    )


def _record_rebuilt_sketches(store: Store, run: _Run, breakdowns: bool) -> None:
    """rebuilt_sketches: the sketches a recomputed device left. The site-day's
    when it was a visitor (§3 visitors) or reached (§3 media_reach) and is no
    longer; a §8 value's when the device no longer has it or no longer reached
    with it."""
    insert = f"INSERT INTO {REBUILT_SKETCHES.name} ({REBUILT_SKETCHES.list()}) "
    store.execute(
        f"{insert} SELECT DISTINCT {run.id}, site_id, day, '', '' FROM "
        "(SELECT site_id, day, device_id, counted_events > 0 AS visitor, "
        f"play_ms >= {REACH_MS} AS reached FROM device_days WHERE {run.replaced}) AS before "
        "ALL INNER JOIN "
        "(SELECT site_id, day, device_id, counted_events > 0 AS visitor_now, "
        f"play_ms >= {REACH_MS} AS reached_now FROM device_days WHERE run_id = {run.id}) "
        "AS now USING (site_id, day, device_id) "
        "WHERE (visitor AND NOT visitor_now) OR (reached AND NOT reached_now)"
    )
    if breakdowns:
        store.execute(
            f"{insert} SELECT DISTINCT {run.id}, {_VALUE_KEY} FROM "
            f"(SELECT {_VALUE_KEY}, device_id, play_ms >= {REACH_MS} AS reached "
            f"FROM device_values WHERE {run.replaced}) AS before "
            "ALL LEFT JOIN "
            f"(SELECT {_VALUE_KEY}, device_id, 1 AS present, play_ms >= {REACH_MS} AS "
            f"reached_now FROM device_values WHERE run_id = {run.id}) AS now "
            f"USING ({_VALUE_KEY}, device_id) "
            "WHERE present = 0 OR (reached AND NOT reached_now)"
        )


def _sum_facts(store: Store, run: _Run) -> None:
    """daily_facts: the previous generation, less the replaced rows, plus the new."""
    store.execute(
        f"INSERT INTO daily_facts ({DAILY_FACTS.list()}) "
        f"SELECT site_id, day, {run.id}, {quote(METRICS_VERSION)}, {_summed(FACT_FIGURES)} "
        f"FROM (SELECT site_id, day, {_signed(FACT_FIGURES)} FROM daily_facts "
        f"WHERE {run.previous} "
        f"UNION ALL SELECT site_id, day, {_signed(FACT_FIGURES, '-')} FROM device_days "
        f"WHERE {run.replaced} "
        f"UNION ALL SELECT site_id, day, {_signed(FACT_FIGURES)} FROM device_days "
        f"WHERE {run.added}) GROUP BY site_id, day"
    )


def _sum_sketches(store: Store, run: _Run) -> None:
    """daily_sketches: the previous generation's merged with the recomputed
    devices'; rebuilt from every current device of the site-days they left."""
    visitor_states = (
        "uniqCombinedStateIf(device_id, counted_events > 0) AS visitors, "
        f"uniqCombinedStateIf(device_id, play_ms >= {REACH_MS}) AS media_reach"
    )
    current = current_device_days(
        f"{run.visible} AND {run.rebuilt_days}", ("counted_events", "play_ms")
    )
    store.execute(
        f"INSERT INTO daily_sketches ({DAILY_SKETCHES.list()}) "
        f"SELECT site_id, day, {run.id}, uniqCombinedMergeState(visitors), "
        "uniqCombinedMergeState(media_reach) FROM "
        "(SELECT site_id, day, visitors, media_reach FROM daily_sketches "
        f"WHERE {run.previous} AND NOT {run.rebuilt_days} "
        f"UNION ALL SELECT site_id, day, {visitor_states} FROM device_days "
        f"WHERE {run.added} AND NOT {run.rebuilt_days} GROUP BY site_id, day "
        f"UNION ALL SELECT site_id, day, {visitor_states} FROM ({current}) "
        "GROUP BY site_id, day) GROUP BY site_id, day"
    )


def _sum_breakdowns(store: Store, run: _Run) -> None:
    """daily_breakdowns (§8): by difference, like the site figures."""
    changed = (
        f"(({_VALUE_KEY}) IN (SELECT {_VALUE_KEY} FROM device_values WHERE {run.added} "
        f"UNION ALL SELECT {_VALUE_KEY} FROM device_values WHERE {run.replaced}))"
    )
    # The values no recomputed device has or had: the previous rows as they are
    # (merging their sketches again cost as much as the rest of the sums).
    store.execute(
        f"INSERT INTO daily_breakdowns ({DAILY_BREAKDOWNS.list()}) "
        f"SELECT {', '.join(run.id if c == 'run_id' else c for c in DAILY_BREAKDOWNS.columns)} "
        "FROM daily_breakdowns "
        f"WHERE {run.previous} AND NOT {changed}"
    )
    zero = ", ".join(f"toInt64(0) AS d_{name}" for name in ADDITIVE_FIGURES)
    signed = ", ".join(f"sign * toInt64({name}) AS d_{name}" for name in ADDITIVE_FIGURES)
    figures = ", ".join(ADDITIVE_FIGURES)
    current = current_devices(f"{run.visible} AND {run.rebuilt_value_days}")
    store.execute(
        f"INSERT INTO daily_breakdowns ({DAILY_BREAKDOWNS.list()}) "
        f"SELECT site_id, day, {run.id}, dimension, value, {_summed(ADDITIVE_FIGURES)}, "
        "uniqCombinedMergeStateIf(visitors, keep), uniqCombinedMergeStateIf(media_reach, keep) "
        # The previous generation's rows; their sketches unless rebuilt.
        f"FROM (SELECT {_VALUE_KEY}, {_signed(ADDITIVE_FIGURES)}, visitors, media_reach, "
        f"NOT {run.rebuilt_values} AS keep FROM daily_breakdowns "
        f"WHERE {run.previous} AND {changed} "
        # The replaced rows subtracted, the new rows added and their devices merged in.
        f"UNION ALL SELECT {_VALUE_KEY}, {', '.join(f'sum(d_{n})' for n in ADDITIVE_FIGURES)}, "
        "uniqCombinedStateIf(device_id, sign > 0) AS visitors, "
        f"uniqCombinedStateIf(device_id, sign > 0 AND play_ms >= {REACH_MS}) AS media_reach, "
        "max(sign > 0) AS keep "
        f"FROM (SELECT {_VALUE_KEY}, device_id, play_ms, sign, {signed} FROM "
        f"(SELECT {_VALUE_KEY}, device_id, {figures}, -1 AS sign FROM device_values "
        f"WHERE {run.replaced} UNION ALL SELECT {_VALUE_KEY}, device_id, {figures}, 1 AS sign "
        f"FROM device_values WHERE {run.added})) GROUP BY {_VALUE_KEY} "
        # The rebuilt sketches, from every current device with the value.
        f"UNION ALL SELECT {_VALUE_KEY}, {zero}, uniqCombinedState(device_id) AS visitors, "
        f"uniqCombinedStateIf(device_id, play_ms >= {REACH_MS}) AS media_reach, 1 AS keep "
        f"FROM device_values WHERE {run.touched} AND {run.rebuilt_values} "
        f"AND (site_id, day, device_id, run_id) IN ({current}) GROUP BY {_VALUE_KEY}) "
        f"GROUP BY {_VALUE_KEY} HAVING max(keep) = 1"
    )


def _previous_without_breakdowns(store: Store, run: _Run) -> bool:
    """Whether a touched site-day's previous generation was stored without §8 rows
    (`pipeline batch --no-breakdowns`): there are no rows to start from.

    Asked of the previous generations' runs, which write §8 rows for every
    site-day with a counted event or none at all: matching each site-day's rows
    read every generation's keys (0.2 s at 5M stored events); a run's rows are
    found by its run_id column alone.
    """
    previous_runs = f"SELECT run_id FROM current_generations WHERE {run.touched}"
    return bool(
        store.rows(
            f"SELECT count() FROM ({previous_runs}) WHERE run_id NOT IN "
            f"(SELECT run_id FROM daily_breakdowns WHERE run_id IN ({previous_runs}))"
        )[0][0]
    )
