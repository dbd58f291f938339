"""Batch runs over files and the run ledger: a run is all or nothing, running it
again changes nothing (docs/standard.md §2), a run killed half way is abandoned by the
next one and leaves no trace in the numbers, two runs never write one store at
once, and every failure the user can cause is one line and exit code 2."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pytest
from support import (
    PRESSMETER,
    ZONE,
    Runner,
    cli,
    event,
    fresh_store,
    one_error_line,
    write_lines,
)

from pressmeter import METRICS_VERSION
from pressmeter.metrics import metric_rows, write_csv
from pressmeter.pipelines.batch import BatchRequest, RunSummary, run_batch
from pressmeter.store import Store, close_stores, open_store, quote
from pressmeter.store.tables import RUN_TABLES

REPO = Path(__file__).resolve().parents[1]
DAY = "2026-10-05"
BIG_EVENTS = 119_981  # what `simulate --outlets 5 --days 3 --events-per-day 40000` writes


# ------------------------------------------------------------------ helpers


def assert_counts_add_up(s: RunSummary) -> None:
    assert s.read == sum(s.rejected.values()) + s.duplicates + s.replayed + s.kept, s.render()


def run_files(store_url: str, paths: list[Path]) -> RunSummary:
    close_stores()  # chDB: one store per process at a time
    summary = run_batch(BatchRequest(store_url, ZONE, inputs=[str(p) for p in paths]))
    assert_counts_add_up(summary)
    return summary


def export_csv(store_url: str, grain: str = "day") -> str:
    close_stores()
    out = io.StringIO()
    write_csv(metric_rows(open_store(store_url), grain), out)
    return out.getvalue()


def query(store_url: str, sql: str) -> list[tuple]:
    close_stores()
    return open_store(store_url).rows(sql)


def run_status(store_url: str) -> dict[str, str]:
    """run_id → its state (the highest status it reached)."""
    return dict(query(store_url, "SELECT run_id, toString(max(status)) FROM runs GROUP BY run_id"))


def insert_started(store_url: str, run_id: str, host: str, pid: int) -> None:
    """A ledger row as a run writes it when it starts."""
    row = {
        "run_id": run_id,
        "status": "started",
        "updated_ms": time.time_ns() // 1_000_000,
        "source_kind": "files",
        "kafka_group": "",
        "metrics_version": METRICS_VERSION,
        "zone": ZONE,
        "lines_read": 0,
        "replayed": 0,
        "rejected": 0,
        "duplicates": 0,
        "kept": 0,
        "checksum": "",
        "detail": json.dumps({"host": host, "pid": pid}),
    }
    close_stores()
    open_store(store_url).insert("runs", pa.Table.from_pylist([row]))
    close_stores()


def _small_batch() -> list[dict[str, Any] | str]:
    """10 lines: 7 valid events, one of them twice, and 2 malformed lines."""
    view = event(at=f"{DAY} 08:00", device="dev-a")
    return [
        view,
        event(at=f"{DAY} 08:05", device="dev-a"),
        event("engagement", at=f"{DAY} 08:06", device="dev-a", engaged_ms=12_000),
        event(at=f"{DAY} 09:00", device="dev-b"),
        event(at=f"{DAY} 09:45", device="dev-b"),  # 45 min later: second visit
        event(at=f"{DAY} 10:00", device="dev-c", site="tv1.vn"),
        event(at=f"{DAY} 10:00", device="dev-d", ip_class="datacenter"),  # IVT
        dict(view),  # duplicate
        "not json at all",
        orjson.dumps(event(at=f"{DAY} 11:00", device="dev-e", ts=1.5e12)).decode(),  # wrong_type
    ]


def _check_small_batch(s: RunSummary) -> None:
    assert (s.read, s.rejected, s.duplicates, s.replayed, s.kept) == (
        10,
        {"not_json": 1, "wrong_type": 1},
        1,
        0,
        7,
    )


def _picked(runner: Runner, site: str, *names: str) -> tuple:
    row = runner.export().get((DAY, site)) or {}
    return tuple(row.get(n) for n in names)


# ------------------------------------------------------------------ idempotent runs


def test_the_same_file_again_changes_nothing(runner: Runner, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.jsonl", _small_batch())
    first = run_files(runner.store_url, [path])
    _check_small_batch(first)
    close_stores()
    names = ("pageviews", "visits", "engaged_visits", "visitors", "ivt_events", "duplicate_events")
    assert _picked(runner, "news1.vn", *names) == (4, 3, 1, 2, 1, 1)
    assert _picked(runner, "tv1.vn", *names) == (1, 1, 0, 1, 0, 0)
    day, month = export_csv(runner.store_url), export_csv(runner.store_url, "month")

    again = run_files(runner.store_url, [path])
    assert (again.read, again.kept, again.duplicates, again.rejected) == (0, 0, 0, {})
    assert again.skipped == [(str(path), f"already read by run {first.run_id}")]
    assert "already read by run" in again.render()
    assert export_csv(runner.store_url) == day
    assert export_csv(runner.store_url, "month") == month

    renamed = tmp_path / "copy-under-another-name.jsonl"
    shutil.copyfile(path, renamed)
    copy = run_files(runner.store_url, [renamed])
    assert (copy.read, copy.kept, copy.duplicates) == (0, 0, 0)
    assert copy.skipped == [(str(renamed), f"already read by run {first.run_id}")]
    assert export_csv(runner.store_url) == day
    assert export_csv(runner.store_url, "month") == month


def test_a_file_listed_twice_in_one_run_is_read_once(runner: Runner, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.jsonl", _small_batch())
    copy = tmp_path / "same-bytes.jsonl"
    shutil.copyfile(path, copy)
    s = run_files(runner.store_url, [path, path, copy])
    _check_small_batch(s)
    assert s.skipped == [
        (str(path), "the same file is listed earlier in this run"),
        (str(copy), "the same file is listed earlier in this run"),
    ]
    once = tmp_path / "once"
    with fresh_store(runner.store_url, once) as other:
        run_files(other, [path])
        assert export_csv(runner.store_url) == export_csv(other)


def test_counts_add_up_with_every_kind_of_removal(runner: Runner, tmp_path: Path) -> None:
    """read == rejected + duplicates + replayed + kept, and each term is the right one."""
    batch = _small_batch()
    first = run_files(runner.store_url, [write_lines(tmp_path / "a.jsonl", batch)])
    _check_small_batch(first)
    kept_view, other_view = batch[0], batch[3]
    assert isinstance(kept_view, dict) and isinstance(other_view, dict)
    personal = event(at=f"{DAY} 12:00", device="someone@example.com")
    late = event(at=f"{DAY} 12:00", device="dev-f")
    late["received_at"] = late["ts"] + 73 * 3_600_000
    new_view = event(at=f"{DAY} 13:00", device="dev-f")
    second = run_files(
        runner.store_url,
        [
            write_lines(
                tmp_path / "b.jsonl",
                [
                    {**kept_view, "received_at": kept_view["received_at"] + 10},  # earlier run
                    {**other_view, "received_at": other_view["received_at"] + 10},  # earlier run
                    new_view,
                    {**new_view, "received_at": new_view["received_at"] + 10},  # this run
                    personal,
                    late,
                    "",
                    "[]",
                ],
            )
        ],
    )
    assert second.read == 8
    assert second.rejected == {
        "personal_data": 1,
        "ts_out_of_window": 1,
        "not_json": 1,
        "not_object": 1,
    }
    assert (second.duplicates_within_run, second.duplicates_across_runs) == (1, 2)
    assert (second.replayed, second.kept) == (0, 1)
    ledger = query(
        runner.store_url,
        "SELECT lines_read, rejected, duplicates, replayed, kept FROM runs "
        f"WHERE run_id = {quote(second.run_id)} AND status = 'committed'",
    )
    assert ledger == [(8, 4, 3, 0, 1)]
    assert runner.metric(DAY, "duplicate_events") == 4


# ------------------------------------------------------------------ bounded steps


def test_a_later_step_copy_received_earlier_replaces_the_kept_one(
    store_url: str, tmp_path: Path
) -> None:
    """Steps of 2 records: every step reads a copy of one id, each received earlier
    than the one kept before it, the last a tie (read later, so a duplicate). The
    copy kept is the one-step run's: the earliest received (position 5)."""
    view = event(at=f"{DAY} 08:00", device="dev-a")
    received = view["received_at"]
    lines = [
        {**view, "received_at": received + 30},
        event(at=f"{DAY} 08:01", device="dev-b"),
        {**view, "received_at": received + 20},
        event(at=f"{DAY} 08:02", device="dev-c"),
        {**view, "received_at": received + 10},
        {**view, "received_at": received + 10},
    ]
    path = write_lines(tmp_path / "steps.jsonl", lines)
    close_stores()
    stepped = run_batch(BatchRequest(store_url, ZONE, inputs=[str(path)], step_records=2))
    assert_counts_add_up(stepped)
    assert (stepped.read, stepped.kept, stepped.duplicates_within_run) == (6, 3, 3)
    kept_copy = f"WHERE event_id = {quote(view['event_id'])}"
    assert query(store_url, f"SELECT position, received_at FROM events {kept_copy}") == [
        (5, received + 10)
    ]
    assert query(store_url, f"SELECT received_at FROM kept_ids {kept_copy}") == [(received + 10,)]
    assert query(
        store_url,
        f"SELECT position, toString(kind) FROM duplicate_events {kept_copy} ORDER BY position",
    ) == [(1, "within_run"), (3, "within_run"), (6, "within_run")]
    assert query(store_url, "SELECT count() FROM system.mutations WHERE is_done = 0") == [(0,)]
    with fresh_store(store_url, tmp_path) as other:
        one_step = run_files(other, [path])
        assert (one_step.kept, one_step.duplicates_within_run) == (3, 3)
        assert export_csv(store_url) == export_csv(other)


def test_steps_count_like_one_step(runner: Runner, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.jsonl", _small_batch())
    close_stores()
    s = run_batch(BatchRequest(runner.store_url, ZONE, inputs=[str(path)], step_records=3))
    _check_small_batch(s)
    # 10 lines in steps of 3: four ranges of the file, read once each.
    ranges = query(
        runner.store_url,
        "SELECT first_position, last_position FROM run_sources ORDER BY first_position",
    )
    assert ranges == [(1, 3), (4, 6), (7, 9), (10, 10)]
    with fresh_store(runner.store_url, tmp_path / "one") as other:
        run_files(other, [path])
        assert export_csv(runner.store_url) == export_csv(other)
    again = run_files(runner.store_url, [path])
    assert again.skipped == [(str(path), f"already read by run {s.run_id}")]


def _forget_migration(store: Store, name: str) -> None:
    """Mark a migration not applied, so that the store's next opening applies it."""
    store.execute(f"ALTER TABLE schema_migrations DELETE WHERE name = {quote(name)}")
    while store.rows("SELECT count() FROM system.mutations WHERE is_done = 0")[0][0]:
        time.sleep(0.05)


def test_a_store_made_before_kept_ids_dedups_against_its_stored_events(
    runner: Runner, tmp_path: Path
) -> None:
    """Migration 0008 fills kept_ids from the events a store already holds."""
    batch = _small_batch()
    _check_small_batch(run_files(runner.store_url, [write_lines(tmp_path / "a.jsonl", batch)]))
    close_stores()
    store = open_store(runner.store_url)
    for table in ("kept_ids", "replaced_copies"):
        store.execute(f"DROP TABLE {table}")
    _forget_migration(store, "0008_kept_ids.sql")
    close_stores()
    assert query(runner.store_url, "SELECT count() FROM kept_ids") == [(7,)]
    again = batch[3]
    assert isinstance(again, dict)
    later = {**again, "received_at": again["received_at"] + 10}
    s = run_files(runner.store_url, [write_lines(tmp_path / "b.jsonl", [later])])
    assert (s.duplicates_across_runs, s.kept) == (1, 0)


def test_an_interrupted_resort_is_made_again_without_storing_a_row_twice(
    runner: Runner, tmp_path: Path
) -> None:
    """Migration 0014 killed in the middle of its events copy: run again, it drops
    the partial copy and copies every row once."""
    _check_small_batch(
        run_files(runner.store_url, [write_lines(tmp_path / "a.jsonl", _small_batch())])
    )
    before = export_csv(runner.store_url)
    close_stores()
    store = open_store(runner.store_url)
    store.execute("CREATE TABLE events_by_run AS events")
    store.execute("INSERT INTO events_by_run SELECT * FROM events LIMIT 3")
    _forget_migration(store, "0014_run_sorted_rows.sql")
    close_stores()
    assert query(runner.store_url, "SELECT count() FROM events") == [(7,)]
    assert query(
        runner.store_url,
        "SELECT count() FROM system.tables WHERE database = currentDatabase() "
        "AND (name LIKE '%_by_run' OR name LIKE '%_before_0014')",
    ) == [(0,)]
    assert export_csv(runner.store_url) == before


# ------------------------------------------------------------------ killed runs


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("big") / "big.jsonl"
    subprocess.run(
        [str(PRESSMETER), "simulate", "--outlets", "5", "--days", "3",
         "--events-per-day", "40000", "--out", str(out)],
        check=True, capture_output=True, cwd=out.parent, timeout=120,
    )  # fmt: skip
    return out


def _kill_after_rows_are_written(
    store_url: str, big_file: Path, cwd: Path, *options: str, wanted: str = ""
) -> int:
    """Start a CLI run, SIGKILL it once it has stored rows but not committed (after
    the log line `wanted`, by default the one that follows the ingest); its pid."""
    command = [str(PRESSMETER), "pipeline", "batch", "--input", str(big_file)]
    proc = subprocess.Popen(
        [*command, "--store", store_url, *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    try:
        assert proc.stderr is not None
        # chDB locks its folder: wait for the log line that follows the ingest
        # pipeline (its rows are stored). On the server, poll the events table.
        if not wanted:
            wanted = "recomputing facts" if store_url.startswith("chdb:") else ": reading "
        for line in proc.stderr:
            if wanted in line:
                break
        else:
            pytest.fail(f"the run ended before it could be killed: rc {proc.wait()}")
        if not store_url.startswith("chdb:"):
            store = open_store(store_url, migrate=False)
            deadline = time.monotonic() + 60
            while not store.rows("SELECT count() FROM events")[0][0]:
                assert proc.poll() is None, "the run ended before it could be killed"
                assert time.monotonic() < deadline
                time.sleep(0.02)
            close_stores()
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert "committed" not in (proc.stdout.read() if proc.stdout else "")
    return proc.pid


@pytest.mark.parametrize(
    "options, wanted",
    [
        pytest.param((), "", id="after-ingest"),
        # About 120,000 events in 5 steps: killed once steps 1 and 2 are stored.
        pytest.param(("--step-records", "30000"), ": step 3/", id="between-steps"),
    ],
)
def test_a_run_killed_half_way_is_abandoned_and_leaves_no_trace(
    store_url: str, big_file: Path, tmp_path: Path, options: tuple[str, ...], wanted: str
) -> None:
    pid = _kill_after_rows_are_written(store_url, big_file, tmp_path, *options, wanted=wanted)
    statuses = run_status(store_url)
    assert list(statuses.values()) == ["started"], statuses
    killed = next(iter(statuses))
    owner = json.loads(
        query(store_url, f"SELECT detail FROM runs WHERE run_id = {quote(killed)}")[0][0]
    )
    assert owner == {"host": socket.gethostname(), "pid": pid}
    assert query(store_url, f"SELECT count() > 0 FROM events WHERE run_id = {quote(killed)}") == [
        (1,)
    ], "the run was killed before it wrote any event"

    again = run_files(store_url, [big_file])
    assert again.abandoned == [killed]
    assert "abandoned" in again.render()
    assert again.read == BIG_EVENTS
    assert not again.skipped
    assert again.kept > 100_000

    statuses = run_status(store_url)
    assert statuses == {killed: "abandoned", again.run_id: "committed"}
    with fresh_store(store_url, tmp_path) as other:
        clean = run_files(other, [big_file])
        clean_day, clean_month = export_csv(other), export_csv(other, "month")
    assert (again.read, again.rejected, again.duplicates, again.kept) == (
        clean.read,
        clean.rejected,
        clean.duplicates,
        clean.kept,
    )
    assert export_csv(store_url) == clean_day
    assert export_csv(store_url, "month") == clean_month

    # The killed run's rows: never visible, and removed (mutations may lag on a server).
    visible = query(
        store_url,
        f"SELECT count() FROM committed_runs WHERE run_id = {quote(killed)}",
    )
    assert visible == [(0,)]
    deadline = time.monotonic() + 20
    while (left := _rows_of(store_url, killed)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert left == {}, f"rows of the abandoned run {killed} are still stored: {left}"


def _rows_of(store_url: str, run_id: str) -> dict[str, int]:
    """table → rows a run left in it, for the tables that still hold some."""
    counts = {
        table.name: query(
            store_url, f"SELECT count() FROM {table.name} WHERE run_id = {quote(run_id)}"
        )
        for table in RUN_TABLES
    }
    return {table: n[0][0] for table, n in counts.items() if n[0][0]}


# ------------------------------------------------------------------ one run at a time


def test_refuses_to_start_while_a_live_run_writes_the_store(store_url: str, tmp_path: Path) -> None:
    path = write_lines(tmp_path / "events.jsonl", _small_batch())
    live = "20261001T000000000000Z-11ve01"
    host, pid = socket.gethostname(), os.getpid()
    insert_started(store_url, live, host, pid)
    result = cli("pipeline", "batch", "--input", str(path), "--store", store_url, cwd=tmp_path)
    line = one_error_line(result)
    assert line.startswith(f"pressmeter: error: run {live} of {host} (pid {pid}) ")
    assert "still writing to this store" in line
    # Refused before writing anything: the live run is left alone, no new run.
    assert run_status(store_url) == {live: "started"}
    assert query(store_url, "SELECT count() FROM events") == [(0,)]


def test_a_started_run_of_a_dead_process_is_abandoned_by_the_next(
    store_url: str, tmp_path: Path
) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = "20261001T000000000000Z-dead01"
    insert_started(store_url, stale, socket.gethostname(), dead.pid)
    s = run_files(store_url, [write_lines(tmp_path / "events.jsonl", _small_batch())])
    _check_small_batch(s)
    assert s.abandoned == [stale]
    assert run_status(store_url) == {stale: "abandoned", s.run_id: "committed"}


# ------------------------------------------------------------------ clear failures


def test_a_missing_input_file_fails_before_anything_is_written(
    store_url: str, tmp_path: Path
) -> None:
    good = write_lines(tmp_path / "good.jsonl", _small_batch())
    missing = tmp_path / "no-such-file.jsonl"
    result = cli(
        "pipeline", "batch", "--input", str(good), str(missing), "--store", store_url,
        cwd=tmp_path,
    )  # fmt: skip
    line = one_error_line(result)
    assert line == f"pressmeter: error: cannot read input file {missing}: No such file or directory"
    assert query(store_url, "SELECT count() FROM runs") == [(0,)]
    assert query(store_url, "SELECT count() FROM committed_runs") == [(0,)]
    assert query(store_url, "SELECT count() FROM events") == [(0,)]


def test_an_unreachable_clickhouse_is_one_clear_error(tmp_path: Path) -> None:
    good = write_lines(tmp_path / "good.jsonl", _small_batch())
    result = cli(
        "pipeline", "batch", "--input", str(good), "--store", "clickhouse://127.0.0.1:1/x",
        cwd=tmp_path,
    )  # fmt: skip
    line = one_error_line(result)
    assert "ClickHouse" in line and "127.0.0.1:1" in line
