"""Benchmark: a run costs what it reads, not what is stored (issue 11 point 3).

1. History: a 100,000-event run into a store of the history (5,000,000 events
   of 10 days, stored in 5 runs) and the same run into an empty store, after
   each of the history's runs, so the ratio is printed against the events
   stored (a curve). Three runs: new traffic of the same days (another seed:
   other devices); a slice of the history's own file (every 51st line, so it
   touches devices with history: the hard case for a run that recomputes the
   devices it touched); the day after the history, from the same outlets and
   readers (what a daily run in production reads). Target: at most 1.5x the
   empty-store time. Each run is timed whole and by phase (ingest: read,
   parse, dedup, store; facts: the touched devices and site-days). With
   `--repeat N` each pair is timed N times and the curve shows the median
   ratio (one pair drifts by ±0.3x on a shared machine). At the end, the hard
   case once more into a copy of the store after `pipeline compact` (which
   deletes the device rows newer runs superseded), with the compaction's time.
2. Hourly vs daily: one simulated day as 24 hourly runs (by local hour of ts)
   into one store, against one daily run of the same events into another; the
   two stores' exports are compared.

Runs are in this process (imports paid once), on chDB stores in a temporary
folder; pin to one core with `taskset -c 0` when comparing.

    taskset -c 0 .venv/bin/python bench/incremental_facts.py [--history 5000000] [--run 100000]
        [--repeat 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from pressmeter.metrics import BREAKDOWN_COLUMNS, breakdown_rows, metric_rows, write_csv
from pressmeter.pipelines.batch import BatchRequest, RunSummary, run_batch
from pressmeter.pipelines.compaction import compact
from pressmeter.runtime import tune_for_batch
from pressmeter.store import close_stores, open_store

VENV_BIN = Path(sys.executable).parent
ZONE = "Asia/Ho_Chi_Minh"
LOCAL = dt.timezone(dt.timedelta(hours=7))
HISTORY_RUNS = 5  # the history is stored in this many runs (bounded memory)
FIRST_DAY = "2026-10-01"  # the history's 10 days from here
NEXT_DAY = "2026-10-11"


def simulate(
    out: Path, events: int, days: int, seed: int = 1, start: str = FIRST_DAY
) -> list[bytes]:
    """About `events` simulated events over `days` days from `start`: 50 outlets."""
    subprocess.run(
        [
            VENV_BIN / "pressmeter",
            *("--log-level", "WARNING", "simulate", "--outlets", "50", "--days", str(days)),
            *("--seed", str(seed), "--start", start),
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
        f"  {label:<44} {s.seconds:>7.2f} s  (ingest {s.ingest_seconds:.2f} s, "
        f"facts {s.facts_seconds:.2f} s)  {s.read:>9,} read"
    )


def history(folder: Path, history_events: int, run_events: int, repeat: int = 1) -> None:
    """Run time against stored history: after each of the history's runs, three
    runs, each on its own copy of the store and beside the same run into an empty
    store (so each ratio is measured within minutes, on a drifting machine),
    `repeat` times each; the curve shows the median ratio."""
    step = max(2, (history_events + run_events) // run_events)
    print(f"simulating {history_events + run_events:,} events over 10 days ...", flush=True)
    lines = simulate(folder / "all.jsonl", history_events + run_events, 10)
    sampled = write(folder / "sampled.jsonl", lines[::step])
    rest = [line for index, line in enumerate(lines) if index % step]
    parts = [
        write(folder / f"history{n}.jsonl", rest[n::HISTORY_RUNS]) for n in range(HISTORY_RUNS)
    ]
    # New traffic of the same days (another seed: other devices); a slice of the
    # history's own traffic (its devices come back: the hard case); the day after
    # the history, from the same outlets and readers (production's daily run).
    runs = {
        "new devices": write(
            folder / "fresh.jsonl", simulate(folder / "fresh-all.jsonl", run_events, 10, 2)
        ),
        "devices with history": sampled,
        "the next day": write(
            folder / "next.jsonl",
            simulate(folder / "next-all.jsonl", run_events, 1, start=NEXT_DAY),
        ),
    }
    stored = folder / "history-store"
    ratios: dict[str, list[tuple[int, float]]] = {label: [] for label in runs}
    for number, part in enumerate(parts, 1):
        run(stored, part)
        held = int(len(rest) * number / HISTORY_RUNS)
        print(f"a run of {run_events:,} events into a store of about {held:,}:", flush=True)
        for label, the_run in runs.items():
            pairs = [pair(folder, stored, label, the_run) for _ in range(repeat)]
            ratios[label].append((held, statistics.median(pairs)))
    compacted = compaction(folder, stored)
    pair(folder, compacted, "compacted: with history", runs["devices with history"])
    print(
        "run time into the store / into an empty store, against the events stored"
        + (f" (median of {repeat} pairs):" if repeat > 1 else ":")
    )
    print(f"  {'stored':>10}  " + "  ".join(f"{label:>20}" for label in runs))
    for index in range(HISTORY_RUNS):
        held = ratios["new devices"][index][0]
        cells = "  ".join(f"{ratios[label][index][1]:>19.2f}x" for label in runs)
        print(f"  {held:>10,}  {cells}")


def compaction(folder: Path, stored: Path) -> Path:
    """A copy of the history's store after `pipeline compact`, timed."""
    compacted = folder / "compacted-store"
    shutil.copytree(stored, compacted, symlinks=True)
    started = time.perf_counter()
    result = compact(f"chdb:{compacted}", ZONE)
    close_stores()
    deleted = ", ".join(f"{table} {rows:,}" for table, rows in result.deleted.items())
    seconds = time.perf_counter() - started
    print(f"pipeline compact of the store: {seconds:.2f} s; deleted {deleted}")
    return compacted


def pair(folder: Path, stored: Path, label: str, the_run: Path) -> float:
    """One run into an empty store and the same run into a copy of `stored`:
    the ratio of their times."""
    probe = folder / "probe"
    shutil.copytree(stored, probe, symlinks=True)  # the links are relative
    empty = run(folder / "empty", the_run)
    full = run(probe, the_run)
    shutil.rmtree(probe)
    shutil.rmtree(folder / "empty")
    print(line(f"{label}, into an empty store", empty))
    print(line(f"{label}, into the store", full))
    print(
        f"    ratio {full.seconds / empty.seconds:.2f}x (target <= 1.5x); facts phase "
        f"{full.facts_seconds / empty.facts_seconds:.2f}x, "
        f"ingest phase {full.ingest_seconds / empty.ingest_seconds:.2f}x",
        flush=True,
    )
    return full.seconds / empty.seconds


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
    parser.add_argument("--repeat", type=int, default=1, help="pairs timed per point (median)")
    args = parser.parse_args()
    tune_for_batch()
    with tempfile.TemporaryDirectory(prefix="pm-bench-") as tmp:
        folder = Path(tmp)
        hourly(folder, args.day)
        history(folder, args.history, args.run, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
