"""Benchmark: the batch pipeline on 1 and 2 cores (issue 11 point 5).

The same simulated events, from a file and from a 6-partition Kafka topic, go
into a fresh database of the ClickHouse server of the local stack, once with
Beam's default single worker and once with 2 workers of the local runner, in
threads (`multi_threading`) and in processes (`multi_processing`: the only way
past the GIL, and the reason the embedded store is refused there). Each run is a
fresh `pipeline batch` process. Printed per run: wall time, events/s, and the
CPU seconds during the run of the runner process, of its worker processes, of
the ClickHouse server and of the Kafka broker (from /proc/PID/stat, before and
after), so the closing note can say where the second core went. Every run's
day, month and channel exports are compared with those of the first run of the
same events (file, 1 worker): 2 workers, and Kafka, must count the same.

The broker, the ClickHouse server and the benchmark share the machine's cores;
nothing is pinned, since the point is to let the runner use two.

Reading the figures. `cores` (the pipeline's CPU s per wall s) says how much of
the machine the run got: below 1 for every mode, the machine was busy with
other work and no mode could gain. `run. s` + `work. s` against the 1-worker
run's CPU s is what the processes cost: every element crosses the Fn API to a
worker and back (encoded twice), each pipeline of a run (an ingest step, the
facts phase) starts its own workers, and the shuffles and the facts phase's SQL
stay in the runner and in ClickHouse. On 2 cores the two workers also compete
with ClickHouse (`ch s`) and the broker (`kafka s`): the wall time cannot drop
below all of that CPU over 2.
Threads share the GIL: they cost no more CPU, and overlap only what runs
outside it (waits on the store and the broker, Arrow); on a machine busy with
other work, a process with more runnable threads also gets a larger share of
it, so compare `cores`. (On Beam 2.75 threads once failed 4 of 10 runs: the
embedded worker's flush every second cut elements in two before a GroupByKey;
pipelines/options.py now turns that flush off. A failed run's row says FAILED.)

    eval "$(deploy/local/stack env)"
    .venv/bin/python bench/multi_core.py [--events 300000,1000000] [--rounds 1]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from batch_scale import CACHE, simulated
from kafka_vs_file import delete_topic, make_topic, produce_file

from pressmeter.store import close_stores, open_store

VENV_BIN = Path(sys.executable).parent
STACK = Path(os.environ.get("PM_STACK_DIR", Path(__file__).resolve().parents[1] / ".stack"))
TICK = os.sysconf("SC_CLK_TCK")
MODES: dict[str, list[str]] = {
    "1 worker": [],
    "2 threads": ["--direct_num_workers=2", "--direct_running_mode=multi_threading"],
    "2 processes": ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
}
EXPORTS = (("--grain", "day"), ("--grain", "month"), ("--grain", "month", "--by", "channel"))


@dataclass(frozen=True)
class Run:
    """One `pipeline batch` process and the CPU seconds spent while it ran."""

    read: int
    wall: float
    runner: float  # the pipeline process itself
    workers: float  # the worker processes it started and reaped
    clickhouse: float
    kafka: float
    export: str  # digest of the exports it left in the store


class BatchFailed(Exception):
    """A `pipeline batch` process failed; its stderr."""

    def summary(self) -> str:
        """Its last line, the whole text kept in CACHE for a look."""
        CACHE.mkdir(parents=True, exist_ok=True)
        log = CACHE / f"multi_core-failed-{uuid.uuid4().hex[:8]}.log"
        log.write_text(str(self))
        last = str(self).strip().splitlines()[-1:] or ["(no output)"]
        return f"FAILED: {last[0][:100]} (stderr in {log})"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(own, reaped children's) user+sys CPU seconds of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    return (utime + stime) / TICK, (cutime + cstime) / TICK


def server_pid(name: str) -> int:
    """The pid of the stack's server `name` (deploy/local/stack writes it)."""
    return int((STACK / name / f"{name}.pid").read_text())


def batch(source: list[str], store_url: str, beam_args: list[str]) -> tuple[int, float, float]:
    """(records read, runner CPU s, workers CPU s) of one `pipeline batch` process.

    The process is waited for without being reaped (WNOWAIT), so its /proc stat
    still holds its own CPU time and that of the workers it reaped."""
    with tempfile.TemporaryFile("w+") as errors, subprocess.Popen(
        [VENV_BIN / "pressmeter", "--log-level", "WARNING", "pipeline", "batch", *source,
         "--store", store_url, *beam_args],
        stdout=subprocess.PIPE, stderr=errors, text=True,
    ) as proc:  # fmt: skip
        out = proc.stdout.read() if proc.stdout else ""
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
        runner, workers = cpu_seconds(proc.pid)
        proc.wait()
        errors.seek(0)
        if proc.returncode:
            raise BatchFailed(errors.read())
    read = next(int(line.split()[1].replace(",", "")) for line in out.splitlines()
                if line.strip().startswith("read"))  # fmt: skip
    return read, runner, workers


def export_digest(store_url: str) -> str:
    """SHA-256 of the day, month and channel exports, as the CLI writes them."""
    digest = hashlib.sha256()
    for export in EXPORTS:
        done = subprocess.run(
            [VENV_BIN / "pressmeter", "metrics", "export", *export, "--store", store_url],
            check=True, capture_output=True,
        )  # fmt: skip
        digest.update(done.stdout)
    return digest.hexdigest()[:12]


def measure(source: list[str], server: str, beam_args: list[str]) -> Run:
    """One run into a fresh database, which is dropped afterwards."""
    database = f"pmbench_{uuid.uuid4().hex[:8]}"
    store_url = f"{server}/{database}"
    servers = {name: server_pid(name) for name in ("clickhouse", "kafka")}
    before = {name: sum(cpu_seconds(pid)) for name, pid in servers.items()}
    started = time.perf_counter()
    try:
        read, runner, workers = batch(source, store_url, beam_args)
        wall = time.perf_counter() - started
        spent = {name: sum(cpu_seconds(pid)) - before[name] for name, pid in servers.items()}
        export = export_digest(store_url)
    finally:
        open_store(store_url, migrate=False).execute(f"DROP DATABASE IF EXISTS {database}")
        close_stores()
    return Run(read, wall, runner, workers, spent["clickhouse"], spent["kafka"], export)


def print_run(size: int, source: str, mode: str, run: Run, one_worker: Run, first: Run) -> None:
    """A row of the table: `one_worker` is the same input's 1-worker run, `first`
    the size's first run, whose exports every run must equal."""
    total = run.runner + run.workers
    print(
        f"{size:>9,} {source:<6} {mode:<12} {run.wall:>7.1f} {run.read / run.wall:>9,.0f} "
        f"{run.wall / one_worker.wall:>6.2f} {run.runner:>7.1f} {run.workers:>8.1f} "
        f"{total / run.wall:>6.2f} {run.clickhouse:>6.1f} {run.kafka:>6.1f} "
        f"{'yes' if run.export == first.export else 'NO: ' + run.export}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", default="300000,1000000")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", default=",".join(MODES), help="of: " + ", ".join(MODES))
    args = parser.parse_args()
    bootstrap, clickhouse = os.environ.get("PM_KAFKA"), os.environ.get("PM_CLICKHOUSE")
    if not bootstrap or not clickhouse:
        raise SystemExit('PM_KAFKA or PM_CLICKHOUSE is not set: eval "$(deploy/local/stack env)"')
    server = clickhouse.rsplit("/", 1)[0]
    modes = {name: MODES[name] for name in args.modes.split(",")}
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    print(f"{'events':>9} {'input':<6} {'mode':<12} {'wall s':>7} {'events/s':>9} "
          f"{'x 1w':>6} {'run. s':>7} {'work. s':>8} {'cores':>6} {'ch s':>6} "
          f"{'kafka s':>6} same")  # fmt: skip
    for size in (int(n) for n in args.events.split(",")):
        events_file = simulated(size)
        topic = make_topic(bootstrap, "none")
        try:
            produce_file(bootstrap, topic, events_file, "none")
            sources = {
                "file": ["--input", str(events_file)],
                "kafka": ["--kafka", bootstrap, "--topic", topic, "--rejected-topic", ""],
            }
            first = None
            for _ in range(args.rounds):
                for name, source in sources.items():
                    one_worker = None
                    for mode, beam_args in modes.items():
                        group = ["--group", f"pmbench-{uuid.uuid4().hex[:8]}"] * (name == "kafka")
                        try:
                            run = measure([*source, *group], server, beam_args)
                        except BatchFailed as failed:
                            print(f"{size:>9,} {name:<6} {mode:<12} {failed.summary()}", flush=True)
                            continue
                        one_worker, first = one_worker or run, first or run
                        print_run(size, name, mode, run, one_worker, first)
        finally:
            delete_topic(bootstrap, topic)
    print(f"load average {os.getloadavg()[0]:.2f} at the end; 'x 1w' is wall time against "
          "1 worker, 'cores' the pipeline's CPU s per wall s, 'ch'/'kafka' the servers' "
          "CPU s during the run; 'same': the exports equal the first run's")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
