"""Benchmark: a run costs what it reads, not what is stored (issue 11 point 3).

1. History: a 100,000-event run into an empty store, and the same run into a
   store already holding 5,000,000 events of the same days; the run is new
   traffic (another seed), then a slice of the history's own file (every 51st
   line, so it touches devices with history: the hard case for a run that
   recomputes the devices it touched). Target: at most 1.5x the empty-store
   time. Each run is timed whole and by phase (ingest: read, parse, dedup,
   store; facts: the touched devices and site-days).
2. Hourly vs daily: one simulated day as 24 hourly runs (by local hour of ts)
   into one store, against one daily run of the same events into another; the
   two stores' exports are compared.

Runs are in this process (imports paid once), on chDB stores in a temporary
folder; pin to one core with `taskset -c 0` when comparing.

    taskset -c 0 .venv/bin/python bench/incremental_facts.py [--history 5000000] [--run 100000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from pressmeter.metrics import BREAKDOWN_COLUMNS, breakdown_rows, metric_rows, write_csv
from pressmeter.pipelines.batch import BatchRequest, RunSummary, run_batch
from pressmeter.runtime import tune_for_batch
from pressmeter.store import close_stores, open_store

VENV_BIN = Path(sys.executable).parent
ZONE = "Asia/Ho_Chi_Minh"
LOCAL = dt.timezone(dt.timedelta(hours=7))
HISTORY_RUNS = 5  # the history is stored in this many runs (bounded memory)


def simulate(out: Path, events: int, days: int, seed: int = 1) -> list[bytes]:
    """About `events` simulated events over `days` days: 50 outlets."""
    subprocess.run(
        [
            VENV_BIN / "pressmeter",
            *("--log-level", "WARNING", "simulate", "--outlets", "50", "--days", str(days)),
            *("--seed", str(seed)),
            *("--events-per-day", str(max(1, events // days)), "--out", str(out)),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out.read_bytes().splitlines()


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def run(store: Path, *files: Path) -> RunSummary:
    summary = run_batch(
        BatchRequest(store_url=f"chdb:{store}", zone=ZONE, inputs=[str(f) for f in files])
    )
    close_stores()
    return summary


def line(label: str, s: RunSummary) -> str:
    return (
        f"  {label:<34} {s.seconds:>7.2f} s  (ingest {s.ingest_seconds:.2f} s, "
        f"facts {s.facts_seconds:.2f} s)  {s.read:>9,} read"
    )


def history(folder: Path, history_events: int, run_events: int) -> None:
    step = max(2, (history_events + run_events) // run_events)
    print(f"simulating {history_events + run_events:,} events over 10 days ...", flush=True)
    lines = simulate(folder / "all.jsonl", history_events + run_events, 10)
    sampled = write(folder / "sampled.jsonl", lines[::step])
    rest = [line for index, line in enumerate(lines) if index % step]
    parts = [
        write(folder / f"history{n}.jsonl", rest[n::HISTORY_RUNS]) for n in range(HISTORY_RUNS)
    ]
    print(f"storing the history: {len(rest):,} events in {HISTORY_RUNS} runs ...", flush=True)
    stored = folder / "history-store"
    for part in parts:
        run(stored, part)
    # New traffic of the same days (another seed: other devices), then a slice of
    # the history's own traffic (its devices come back: the hard case).
    fresh = write(folder / "fresh.jsonl", simulate(folder / "fresh-all.jsonl", run_events, 10, 2))
    for label, the_run in (("new devices", fresh), ("devices with history", sampled)):
        print(f"a run of {run_events:,} events, {label}:")
        empty = run(folder / f"empty-{the_run.stem}", the_run)
        full = run(stored, the_run)
        print(line("into an empty store", empty))
        print(line("into the store of the history", full))
        print(
            f"  ratio {full.seconds / empty.seconds:.2f}x (target <= 1.5x); "
            f"facts phase {full.facts_seconds / empty.facts_seconds:.2f}x, "
            f"ingest phase {full.ingest_seconds / empty.ingest_seconds:.2f}x",
            flush=True,
        )


def exports(store: Path) -> str:
    db = open_store(f"chdb:{store}")
    out = io.StringIO()
    write_csv(metric_rows(db), out)
    write_csv(breakdown_rows(db, "source"), out, BREAKDOWN_COLUMNS)
    close_stores()
    return out.getvalue()


def hourly(folder: Path, events: int) -> None:
    print(f"simulating one day of about {events:,} events ...", flush=True)
    lines = simulate(folder / "day.jsonl", events, 1)
    by_hour: dict[int, list[bytes]] = {}
    for raw in lines:
        try:
            ts = orjson.loads(raw)["ts"]
            hour = dt.datetime.fromtimestamp(ts / 1000, LOCAL).hour
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError):
            hour = 23  # the simulator's malformed lines: read with the last hour
        by_hour.setdefault(hour, []).append(raw)
    files = [write(folder / f"hour{h:02d}.jsonl", by_hour[h]) for h in sorted(by_hour)]
    started = time.perf_counter()
    runs = [run(folder / "hourly", f) for f in files]
    hourly_s = time.perf_counter() - started
    daily = run(folder / "daily", write(folder / "whole-day.jsonl", lines))
    same = exports(folder / "hourly") == exports(folder / "daily")
    last = runs[-1]
    print(f"{len(runs)} hourly runs vs one daily run of {len(lines):,} events:")
    print(f"  hourly runs, all     {hourly_s:>7.2f} s  ({hourly_s / len(runs):.2f} s a run)")
    print(line("  the last hourly run", last))
    print(line("  the daily run", daily))
    print(
        f"  24 hourly / daily {hourly_s / daily.seconds:.2f}x; facts of the last hour / "
        f"facts of the first {last.facts_seconds / runs[0].facts_seconds:.2f}x; "
        f"same exports: {same}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--history", type=int, default=5_000_000)
    parser.add_argument("--run", type=int, default=100_000)
    parser.add_argument("--day", type=int, default=100_000, help="events of the hourly day")
    args = parser.parse_args()
    tune_for_batch()
    with tempfile.TemporaryDirectory(prefix="pm-bench-") as tmp:
        folder = Path(tmp)
        hourly(folder, args.day)
        history(folder, args.history, args.run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
