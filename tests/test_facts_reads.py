"""Which stored events the facts step reads for the site-days a run touched."""

from __future__ import annotations

import datetime as dt

from support import Runner, event

from pressmeter.calendar import date_to_day
from pressmeter.pipelines.incremental import FactsPartition, FactsScope, SiteDays, plan_facts
from pressmeter.store import open_store


def day(text: str) -> int:
    return date_to_day(dt.date.fromisoformat(text))


def test_each_site_is_read_within_its_own_days_only(runner: Runner) -> None:
    summary = runner.batch(
        [
            event(at="2026-10-05 09:00", site="a.vn"),
            event(at="2026-10-20 09:00", site="a.vn"),
            event(at="2026-10-05 09:00", site="b.vn"),
            event(at="2026-10-20 09:00", site="b.vn", device="dev-b"),
            event(at="2026-10-20 09:00", site="c.vn"),
        ]
    )
    part = FactsPartition(
        (
            SiteDays("a.vn", day("2026-10-04"), day("2026-10-06")),
            SiteDays("b.vn", day("2026-10-19"), day("2026-10-21")),
        ),
        FactsScope.of_run(summary.run_id),
    )
    read = open_store(runner.store_url).table(part.sql(summary.run_id))
    assert list(zip(read["site_id"].to_pylist(), read["day"].to_pylist())) == [
        ("a.vn", day("2026-10-05")),
        ("b.vn", day("2026-10-20")),
    ]
    assert read["device_id"].to_pylist() == ["dev-a", "dev-b"]


def test_device_buckets_of_a_big_site_split_its_devices_between_them(runner: Runner) -> None:
    """A site too big for one partition is read in device buckets: each touched
    device in exactly one bucket, with all its events of the read range."""
    devices = [f"dev-{n}" for n in range(12)]
    summary = runner.batch(
        [event(at=f"2026-10-05 09:0{i}", site="a.vn", device=d) for d in devices for i in (0, 1)]
    )
    site = (SiteDays("a.vn", day("2026-10-04"), day("2026-10-06")),)
    scope = FactsScope.of_run(summary.run_id)
    store = open_store(runner.store_url)
    read = [
        store.table(FactsPartition(site, scope, bucket, 2).sql(summary.run_id))["device_id"]
        for bucket in (0, 1)
    ]
    first, second = (column.to_pylist() for column in read)
    assert first and second and not set(first) & set(second)
    assert sorted(first + second) == sorted(devices * 2)


def test_a_day_beside_is_recomputed_only_where_a_visit_may_cross_its_midnight(
    runner: Runner,
) -> None:
    """Run 2 brings dev-a an event at 00:15 that joins its visit of 23:50 the day
    before (gap 25 min): that day is made again, its visit now engaged. dev-b's
    day before ends at 09:00 and b.vn's at 22:00, far from midnight: theirs keep
    the rows and the generation of run 1 (docs/standard.md, Readings: Batches)."""
    first = runner.batch(
        [
            event(at="2026-10-05 23:50", device="dev-a"),
            event(at="2026-10-05 09:00", device="dev-b"),
            event(at="2026-10-05 22:00", site="b.vn", device="dev-c"),
        ]
    )
    assert runner.metric("2026-10-05", "engaged_visits") == 0
    second = runner.batch(
        [
            event(at="2026-10-06 00:15", device="dev-a"),
            event(at="2026-10-06 12:00", device="dev-b"),
            event(at="2026-10-06 12:00", site="b.vn", device="dev-c"),
        ]
    )
    store = open_store(runner.store_url)
    recomputed = store.rows(
        "SELECT site_id, toString(day), device_id FROM device_days "
        f"WHERE run_id = '{second.run_id}' ORDER BY site_id, day, device_id"
    )
    assert recomputed == [
        ("b.vn", "2026-10-06", "dev-c"),
        ("news1.vn", "2026-10-05", "dev-a"),
        ("news1.vn", "2026-10-06", "dev-a"),
        ("news1.vn", "2026-10-06", "dev-b"),
    ]
    generations = store.rows(
        "SELECT site_id, toString(day), run_id FROM current_generations ORDER BY site_id, day"
    )
    assert generations == [
        ("b.vn", "2026-10-05", first.run_id),
        ("b.vn", "2026-10-06", second.run_id),
        ("news1.vn", "2026-10-05", second.run_id),
        ("news1.vn", "2026-10-06", second.run_id),
    ]
    export = runner.export()
    figures = ("pageviews", "visits", "engaged_visits", "visitors")
    assert [tuple(export[("2026-10-05", "news1.vn")][f] for f in figures)] == [(2, 2, 1, 2)]
    assert [tuple(export[("2026-10-06", "news1.vn")][f] for f in figures)] == [(2, 1, 0, 2)]
    assert [tuple(export[("2026-10-05", "b.vn")][f] for f in figures)] == [(1, 1, 0, 1)]


def test_the_plan_counts_exactly_the_events_each_partition_reads(runner: Runner) -> None:
    """The plan counts a run's stored events from device_days (each device-day's
    current row holds all its events, counted or not) and its own from events:
    the numbers of events its partitions then read, site by site."""
    runner.batch(
        [
            event(at="2026-10-03 09:00", device="dev-a"),
            event(at="2026-10-05 09:00", device="dev-a"),
            event(at="2026-10-05 09:00", device="dev-b", ua="Googlebot/2.1"),
            event(at="2026-10-05 22:00", site="b.vn", device="dev-c"),
        ]
    )
    runner.batch([event(at="2026-10-05 10:00", device="dev-a")])
    run = runner.batch(
        [
            event(at="2026-10-06 12:00", device="dev-a"),
            event(at="2026-10-06 12:00", device="dev-b"),
            event(at="2026-10-06 12:00", device="dev-new"),
            event(at="2026-10-06 12:00", site="b.vn", device="dev-c"),
        ]
    )
    store = open_store(runner.store_url)
    scope = FactsScope.of_run(run.run_id)
    (part,) = plan_facts(store, run.run_id, scope)
    read = store.table(part.sql(run.run_id))["site_id"].to_pylist()
    assert sorted(store.rows(scope.event_counts(part.sites, run.run_id))) == [
        ("b.vn", read.count("b.vn")),
        ("news1.vn", read.count("news1.vn")),
    ]
    # dev-a: its 2 stored events of 10-05 (10-03 is beyond the 2 days read either
    # side) and 1 new; dev-b: its stored bot event and 1 new; dev-new: 1 new;
    # dev-c of b.vn: 1 stored and 1 new.
    assert (read.count("news1.vn"), read.count("b.vn")) == (6, 2)
    stored_bot_events = store.rows(
        "SELECT sum(ivt_events) FROM device_days "
        f"WHERE device_id = 'dev-b' AND run_id != '{run.run_id}'"
    )
    assert stored_bot_events == [(1,)]


def test_stored_rows_are_looked_up_only_for_the_devices_with_history(runner: Runner) -> None:
    """The plan records which of a run's devices have committed rows in the days
    it reads (devices_with_history); a run of new devices only has none, and its
    partitions then read its own events alone."""
    runner.batch(
        [
            event(at="2026-10-05 09:00", device="dev-a"),
            event(at="2026-10-20 09:00", device="dev-far"),
        ]
    )
    returning = runner.batch(
        [
            event(at="2026-10-06 12:00", device="dev-a"),
            event(at="2026-10-06 12:00", device="dev-far"),
            event(at="2026-10-06 12:00", device="dev-new"),
        ]
    )
    fresh = runner.batch([event(at="2026-10-06 13:00", device="dev-newer")])
    store = open_store(runner.store_url)
    # dev-far's stored day (10-20) is outside the days the run reads (10-04..10-08).
    assert store.rows(
        "SELECT site_id, device_id FROM devices_with_history "
        f"WHERE run_id = '{returning.run_id}' ORDER BY device_id"
    ) == [("news1.vn", "dev-a")]
    assert store.rows(
        f"SELECT count() FROM devices_with_history WHERE run_id = '{fresh.run_id}'"
    ) == [(0,)]
    (part,) = plan_facts(store, fresh.run_id, FactsScope.of_run(fresh.run_id))
    assert not part.scope.history
    assert store.table(part.sql(fresh.run_id))["device_id"].to_pylist() == ["dev-newer"]
    assert runner.metric("2026-10-06", "visitors") == 4
