"""Benchmark: the batch pipeline at scale (issue 11 points 2 and 3).

1. Peak memory (max RSS of the `pipeline batch` process) for inputs of 1M, 5M
   and 20M simulated events, so the curve is visible: the run proceeds in steps
   of `--step-records` records (pipelines/steps.py), so it should be flat.
2. The ingest phase of a 100,000-event run into an empty store against the same
   run into a store holding the 5M events of the same days: dedup looks its ids
   up in `kept_ids`, so the ratio should stay near 1 whatever the history.

Inputs are simulated once (50 outlets over the same 10 days) and cached in
.cache/bench/ (ignored by git); generating 20M events takes a while. Each run is
a fresh process; the machine may be shared, so read ratios, not absolutes.

    .venv/bin/python bench/batch_scale.py [--events 1000000,5000000,20000000]
        [--kafka BOOTSTRAP] [--step-records N] [--skip-history]
    (--events "" measures only the history ratio)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

VENV_BIN = Path(sys.executable).parent
CACHE = Path(__file__).resolve().parents[1] / ".cache" / "bench"
DAYS = 10
HISTORY_EVENTS = 5_000_000
RUN_EVENTS = 100_000
_INGEST = re.compile(r"ingest phase ([\d.]+) s")


def simulated(events: int, seed: int = 1) -> Path:
    """About `events` simulated events over DAYS days (cached)."""
    out = CACHE / f"events-{events}-seed{seed}.jsonl"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".partial.jsonl")
        subprocess.run(
            [VENV_BIN / "pressmeter", "--log-level", "WARNING", "simulate",
             "--outlets", "50", "--days", str(DAYS), "--events-per-day",
             str(max(1, round(events / DAYS))), "--seed", str(seed), "--out", str(partial)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        partial.rename(out)
    return out


def batch(source: list[str], store: Path, step_records: int | None) -> dict[str, float]:
    """One `pipeline batch` process: wall s, ingest-phase s, peak RSS MiB, records read."""
    steps = ["--step-records", str(step_records)] if step_records else []
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        proc = subprocess.Popen(
            [VENV_BIN / "pressmeter", "--log-level", "INFO", "pipeline", "batch", *source,
             "--store", f"chdb:{store}", *steps],
            stdout=out_file, stderr=err_file, text=True,
        )  # fmt: skip
        _, status, usage = os.wait4(proc.pid, 0)  # this process's own peak, not the max of all
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    if proc.returncode:
        raise SystemExit(f"pipeline batch failed:\n{err[-3000:]}")
    read = next(int(line.split()[1].replace(",", "")) for line in out.splitlines()
                if line.strip().startswith("read"))  # fmt: skip
    ingest = _INGEST.search(err)
    return {
        "wall": wall,
        "ingest": float(ingest.group(1)) if ingest else float("nan"),
        "peak": usage.ru_maxrss / 1024,
        "read": read,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="1000000,5000000,20000000")
    parser.add_argument("--kafka", help="also measure the Kafka path (topic per size)")
    parser.add_argument("--step-records", type=int)
    parser.add_argument("--skip-history", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="history runs of each kind")
    args = parser.parse_args()
    sizes = [int(n) for n in args.events.split(",") if n]
    print(f"{os.cpu_count()} cores (shared machine); inputs cached in {CACHE}", flush=True)
    with tempfile.TemporaryDirectory(prefix="pm-scale-", dir=CACHE.parent) as tmp:
        folder = Path(tmp)
        print(f"{'path':>6} {'events':>11} {'wall s':>8} {'ingest s':>9} {'peak MiB':>9}")
        for size in sizes:
            store = folder / f"store-{size}"
            got = batch(["--input", str(simulated(size))], store, args.step_records)
            print(f"{'file':>6} {got['read']:>11,} {got['wall']:>8.1f} {got['ingest']:>9.1f} "
                  f"{got['peak']:>9,.0f}", flush=True)  # fmt: skip
            if size != HISTORY_EVENTS:
                shutil.rmtree(store)
        if args.kafka:
            for size in sizes:
                got = _kafka_run(args.kafka, size, folder / f"kstore-{size}", args.step_records)
                print(f"{'kafka':>6} {got['read']:>11,} {got['wall']:>8.1f} "
                      f"{got['ingest']:>9.1f} {got['peak']:>9,.0f}", flush=True)  # fmt: skip
                shutil.rmtree(folder / f"kstore-{size}")
        if not args.skip_history:
            _history(folder, args.step_records, args.repeat)
    return 0


def _history(folder: Path, step_records: int | None, repeat: int) -> None:
    """A 100k-event run into an empty store and into one holding 5M events,
    alternately `repeat` times; medians, since a shared machine drifts."""
    history = folder / f"store-{HISTORY_EVENTS}"
    if not history.exists():
        batch(["--input", str(simulated(HISTORY_EVENTS))], history, step_records)
    new = ["--input", str(simulated(RUN_EVENTS, seed=2))]
    runs: dict[str, list[dict[str, float]]] = {"empty": [], "full": []}
    for _ in range(repeat):
        for kind in runs:
            store = folder / kind
            shutil.rmtree(store, ignore_errors=True)
            if kind == "full":
                shutil.copytree(history, store, symlinks=True)  # chDB links metadata/default
            runs[kind].append(batch(new, store, step_records))
    empty, full = ({k: _median(r, k) for k in ("ingest", "wall")} for r in runs.values())
    print(
        f"100k-event run, ingest phase (median of {repeat}): empty store {empty['ingest']:.2f} s, "
        f"store of {HISTORY_EVENTS:,} events of the same days {full['ingest']:.2f} s "
        f"(ratio {full['ingest'] / empty['ingest']:.2f}); whole run {empty['wall']:.1f} s "
        f"vs {full['wall']:.1f} s (ratio {full['wall'] / empty['wall']:.2f})"
    )


def _median(runs: list[dict[str, float]], key: str) -> float:
    values = sorted(run[key] for run in runs)
    return values[len(values) // 2]


def _kafka_run(bootstrap: str, size: int, store: Path, step_records: int | None) -> dict:
    """The same events produced to a fresh topic, then `pipeline batch --kafka`."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"pm.bench.{size}.{int(time.time())}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 6, 1)])[topic].result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 50,
                         "batch.size": 1 << 20})  # fmt: skip
    with simulated(size).open("rb") as lines:
        for line in lines:
            while True:
                try:
                    producer.produce(topic, line.rstrip(b"\n"))
                    break
                except BufferError:
                    producer.poll(0.1)
    producer.flush()
    try:
        source = ["--kafka", bootstrap, "--topic", topic, "--group", topic]
        return batch(source, store, step_records)
    finally:
        admin.delete_topics([topic])


if __name__ == "__main__":
    sys.exit(main())
