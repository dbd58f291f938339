"""`pipeline compact`: superseded device rows and working rows deleted, figures unchanged."""

from __future__ import annotations

from pathlib import Path

from support import ZONE, Runner, cli, event, fresh_store

from pressmeter.metrics import breakdown_rows
from pressmeter.pipelines.compaction import compact
from pressmeter.store import close_stores, open_store

# Run 1: dev-a and dev-b read news1.vn on 5 October. Run 2: dev-a again that day,
# so its device-day is recomputed and run 1's row of it superseded. Run 3, after
# the compaction: dev-a once more, summed by difference from run 2's rows.
RUN_1 = [
    event(at="2026-10-05 09:00", device="dev-a", section="news"),
    event(at="2026-10-05 09:10", device="dev-b", section="sport"),
]
RUN_2 = [event(at="2026-10-05 15:00", device="dev-a", section="sport")]
RUN_3 = [event(at="2026-10-05 20:00", device="dev-a", section="news")]


def _device_rows(store_url: str) -> list[tuple[str, str]]:
    return open_store(store_url).rows(
        "SELECT device_id, run_id FROM device_days ORDER BY device_id, run_id"
    )


def _figures(runner: Runner) -> tuple[object, ...]:
    store = open_store(runner.store_url)
    sections = [
        (r.period, r.value, r.pageviews, r.visits, r.visitors)
        for r in breakdown_rows(store, "section", "month")
    ]
    return runner.export("day"), runner.export("month"), sections


def test_compaction_deletes_only_superseded_and_working_rows(
    runner: Runner, store_url: str, tmp_path: Path
) -> None:
    first = runner.batch(RUN_1)
    second = runner.batch(RUN_2)
    store = open_store(store_url)
    superseded_values = store.rows(
        f"SELECT count() FROM device_values WHERE run_id = '{first.run_id}' AND device_id = 'dev-a'"
    )[0][0]
    assert superseded_values == 7  # one value of each §8 dimension
    before = _figures(runner)
    assert _device_rows(store_url) == [
        ("dev-a", first.run_id),
        ("dev-a", second.run_id),
        ("dev-b", first.run_id),
    ]

    result = compact(store_url, ZONE)

    assert result.deleted["device_days"] == 1
    assert result.deleted["device_values"] == superseded_values
    assert result.deleted["replaced_device_days"] == 1  # run 2 replaced dev-a's row
    assert _device_rows(store_url) == [("dev-a", second.run_id), ("dev-b", first.run_id)]
    for table in ("replaced_device_days", "rebuilt_sketches", "devices_with_history"):
        assert store.rows(f"SELECT count() FROM {table}")[0][0] == 0
    assert _figures(runner) == before
    assert runner.metric("2026-10-05", "visitors") == 2
    assert runner.metric("2026-10", "pageviews", grain="month") == 3

    # A run after the compaction gives the figures of the same runs into a store
    # never compacted.
    third = runner.batch(RUN_3)
    compacted = _figures(runner)
    close_stores()  # chDB opens one store per process
    with fresh_store(store_url, tmp_path) as other:
        reference = Runner(other, tmp_path)
        for events in (RUN_1, RUN_2, RUN_3):
            reference.batch(events)
        assert _figures(reference) == compacted
    assert runner.metric("2026-10", "pageviews", grain="month") == 4
    # Run 3 superseded run 2's row of dev-a (two sections that day: 8 value rows):
    # the next compaction deletes it, and one more finds nothing left.
    again = compact(store_url, ZONE)
    assert (again.deleted["device_days"], again.deleted["device_values"]) == (1, 8)
    assert _device_rows(store_url)[0] == ("dev-a", third.run_id)
    assert compact(store_url, ZONE).deleted == dict.fromkeys(again.deleted, 0)


def test_compact_command_prints_what_it_deleted(tmp_path: Path) -> None:
    store = f"chdb:{tmp_path / 'store'}"
    runner = Runner(store, tmp_path)
    runner.batch(RUN_1)
    runner.batch(RUN_2)
    close_stores()  # the command opens the store in its own process
    done = cli("pipeline", "compact", "--store", store, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "compacted the store"
    assert lines[1].split() == ["device_values", "7", "rows", "deleted"]
    assert lines[2].split() == ["device_days", "1", "rows", "deleted"]
