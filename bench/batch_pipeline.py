"""Benchmark: the whole batch pipeline (file → chDB) on simulated events.

Prints events/s per core (events divided by the process's CPU seconds, so the
figure does not depend on how many cores the runner happened to use), wall time
and peak memory (max RSS), with the §8 breakdowns and without them, run after
run. Each measured run is a fresh process and a fresh store, start-up and
imports included. Targets: ≥ 100,000 events/s per core, < 2 GiB peak (issue 2);
≥ 140,000 on 300,000 events on one core (issue 11, `--events 300000 --pin`).

The speed of a shared machine drifts by 20% and more within minutes, so before
each run the benchmark also times orjson parsing the same lines: the issue's
yardstick (about 700,000 events/s per core on the machine it was written on),
printed beside each run to show how fast the machine was at that moment.

    .venv/bin/python bench/batch_pipeline.py [--events 1000000] [--repeat 3] [--pin]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent


def simulate(folder: Path, events: int) -> Path:
    """About `events` simulated events: 50 outlets over 30 days."""
    out = folder / "events.jsonl"
    per_day = max(1, round(events / 30))
    subprocess.run(
        [
            VENV_BIN / "pressmeter",
            "--log-level",
            "WARNING",
            "simulate",
            "--outlets",
            "50",
            "--days",
            "30",
            "--events-per-day",
            str(per_day),
            "--out",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out


def orjson_rate(events_file: Path, lines: int = 200_000) -> float:
    """Events/s per core that orjson alone parses from the head of the file."""
    import orjson

    with events_file.open("rb") as handle:
        head = [line for _, line in zip(range(lines), handle) if _is_json(line)]
    started = time.process_time()
    for line in head:
        orjson.loads(line)
    return len(head) / (time.process_time() - started)


def _is_json(line: bytes) -> bool:
    import orjson

    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def measure(source: list[str], store: Path, pin: bool = False) -> tuple[int, float, float, float]:
    """(events read, wall s, CPU s, peak RSS MiB) of one `pipeline batch` process
    reading `source` (`--input FILE` or `--kafka ...`), on core 0 if `pin`."""
    shutil.rmtree(store, ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    command = [
        VENV_BIN / "pressmeter",
        "--log-level",
        "WARNING",
        "pipeline",
        "batch",
        *source,
        "--store",
        f"chdb:{store}",
    ]
    done = subprocess.run(
        ["taskset", "-c", "0", *command] if pin else command,
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    read = next(
        int(line.split()[1].replace(",", ""))
        for line in done.stdout.splitlines()
        if line.strip().startswith("read")
    )
    return read, wall, cpu, after.ru_maxrss / 1024


# The two ways a run is measured: the §8 rows cost CPU of their own (issue 9).
MODES = {"breakdowns": [], "no breakdowns": ["--no-breakdowns"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--pin", action="store_true", help="run each pipeline on core 0 only (taskset -c 0)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pm-bench-") as tmp:
        folder = Path(tmp)
        print(f"simulating about {args.events:,} events ...", flush=True)
        events_file = simulate(folder, args.events)
        size = events_file.stat().st_size
        print(
            f"input: {events_file.name}, {size / 2**20:,.0f} MiB; "
            f"{os.cpu_count()} cores on this machine{', runs on core 0' * args.pin}"
        )
        print(
            f"{'run':>3} {'mode':<13} {'events':>10} {'wall s':>7} {'cpu s':>7} "
            f"{'events/s/core':>14} {'events/s wall':>14} {'peak MiB':>9} {'orjson/s':>9} "
            f"{'load':>5}"
        )
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        yardsticks = []
        for run in range(1, args.repeat + 1):
            for mode, options in MODES.items():
                yardstick = orjson_rate(events_file)
                source = ["--input", str(events_file), *options]
                read, wall, cpu, peak = measure(source, folder / "store", args.pin)
                rates[mode].append(read / cpu)
                yardsticks.append(yardstick)
                print(
                    f"{run:>3} {mode:<13} {read:>10,} {wall:>7.1f} {cpu:>7.1f} "
                    f"{read / cpu:>14,.0f} {read / wall:>14,.0f} {peak:>9,.0f} "
                    f"{yardstick:>9,.0f} {os.getloadavg()[0]:>5.1f}",
                    flush=True,
                )
        for mode, mode_rates in rates.items():
            print(
                f"{mode}: median {statistics.median(mode_rates):,.0f} events/s per core, "
                f"best {max(mode_rates):,.0f}"
            )
        print(f"orjson median {statistics.median(yardsticks):,.0f}/s; peak RSS {peak:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
