"""Benchmark: closing a month (pressmeter/closing.py) on a simulated month in chDB.

Counts a simulated October (50 outlets, 30 days) into a fresh embedded store,
then times, in this process: the first close (revision 1, with the ranking), a
close again on the same inputs (compares, writes nothing), the export of the
closed month (frozen figures) and with --newest (computed now). The batch is
not timed: its own benchmark is bench/batch_pipeline.py.

    .venv/bin/python bench/close_month.py [--events 300000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from batch_pipeline import simulate

from pressmeter.closing import close_month
from pressmeter.pipelines.batch import BatchRequest, run_batch
from pressmeter.ranking import load_outlets
from pressmeter.reporting import reported_rows
from pressmeter.store import open_store

ZONE = "Asia/Ho_Chi_Minh"
MONTH = "2026-10"


def timed(label: str, action, repeat: int = 3) -> object:
    """Run `action` `repeat` times; print the best wall time; return its result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    print(f"{label:<44} {best * 1000:8.1f} ms (best of {repeat})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        events = simulate(Path(folder), args.events)
        url = f"chdb:{Path(folder) / 'store'}"
        summary = run_batch(BatchRequest(url, ZONE, inputs=[str(events)]))
        print(f"counted: {summary.kept:,} kept events, {summary.site_days:,} site-days")
        store = open_store(url)
        outlets = load_outlets(str(events).replace(".jsonl", ".outlets.json"))
        due = int(dt.datetime(2026, 11, 4, tzinfo=dt.timezone(dt.timedelta(hours=7))).timestamp())
        first = timed(
            "first close (revision 1, with the ranking)",
            lambda: close_month(store, MONTH, ZONE, outlets, now_ms=due * 1000),
            repeat=1,
        )
        print(f"revision {first.revision.revision}: {first.revision.input_runs} input run(s)")
        again = timed(
            "close again, same inputs (nothing written)",
            lambda: close_month(store, MONTH, ZONE, outlets, now_ms=due * 1000),
        )
        assert not again.written
        october = dt.date(2026, 10, 1)
        rows = timed(
            "export --grain month, frozen revision",
            lambda: reported_rows(store, ZONE, "month", october, october),
        )
        timed(
            "export --grain month --newest (computed)",
            lambda: reported_rows(store, ZONE, "month", october, october, newest=True),
        )
        print(f"sites in the month: {len(rows)}")


if __name__ == "__main__":
    main()
