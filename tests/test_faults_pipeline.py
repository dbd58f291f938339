"""Faults under a running batch (issue: hostile input, faults and privacy): the
pipeline killed with SIGKILL at random points of both phases, on both stores, and
the ClickHouse server stopped under a run. After each, a plain re-run must give
exports byte-identical to those of one clean run: nothing lost, nothing counted
twice, nothing of the dead run visible.

The kill points are drawn at random inside each phase as a clean run on this
machine timed it, so they land inside the phase on a fast machine or a slow one.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from private_clickhouse import PrivateClickHouse
from support import PRESSMETER, cli, empty_store

# The phase markers `pipeline batch` logs (pipelines/batch.py).
INGEST = re.compile(r": reading \d+ source")
FACTS = re.compile(r": recomputing facts")
SEED = int(os.environ.get("PM_FAULT_SEED", "20261201"))


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 120,000 simulated events of 6 outlets over 3 days, noise included."""
    folder = tmp_path_factory.mktemp("traffic")
    path = folder / "events.jsonl"
    done = cli(
        "simulate", "--outlets", "6", "--days", "3", "--events-per-day", "40000",
        "--out", str(path), cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return path


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    phases: dict[str, float]  # marker name → seconds after start when it was logged


def _batch(store: str, traffic: Path, cwd: Path, kill_in: tuple[str, float] | None = None) -> Run:
    """`pipeline batch`, reading its log as it goes; with `kill_in=(phase, delay)`,
    SIGKILL `delay` seconds after that phase's marker."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [str(PRESSMETER), "pipeline", "batch", "--input", str(traffic), "--store", store],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
    )
    assert proc.stderr is not None and proc.stdout is not None
    phases: dict[str, float] = {}
    lines = []
    for line in proc.stderr:
        lines.append(line)
        for name, marker in (("ingest", INGEST), ("facts", FACTS)):
            if marker.search(line):
                phases[name] = time.monotonic() - started
        if kill_in and kill_in[0] in phases:
            time.sleep(kill_in[1])
            proc.send_signal(signal.SIGKILL)
            break
    stdout, stderr = proc.communicate(timeout=300)
    return Run(proc.returncode, stdout, "".join(lines) + stderr, phases)


def _exports(store: str, cwd: Path) -> tuple[str, str]:
    """The day and month exports (docs/standard.md §4), as bytes an auditor would compare."""
    day = cli("metrics", "export", "--store", store, "--grain", "day", cwd=cwd)
    month = cli("metrics", "export", "--store", store, "--grain", "month", cwd=cwd)
    assert day.returncode == 0 and month.returncode == 0, day.stderr + month.stderr
    assert day.stdout.count("\n") > 10
    return day.stdout, month.stdout


def _clean(kind: str, traffic: Path, folder: Path) -> Iterator[tuple[str, Run, tuple[str, str]]]:
    """(store kind, a clean run with its phase timings, its exports)."""
    with empty_store(kind, folder) as store:
        run = _batch(store, traffic, folder)
        assert run.returncode == 0, run.stderr
        assert set(run.phases) == {"ingest", "facts"}, run.stderr
        yield kind, run, _exports(store, folder)


@pytest.fixture(
    scope="module", params=["chdb", pytest.param("server", marks=pytest.mark.clickhouse)]
)
def clean(
    request: pytest.FixtureRequest, traffic: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Run, tuple[str, str]]]:
    yield from _clean(request.param, traffic, tmp_path_factory.mktemp("clean"))


@pytest.fixture(scope="module")
def clean_on_server(
    traffic: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Run, tuple[str, str]]]:
    yield from _clean("server", traffic, tmp_path_factory.mktemp("clean"))


@pytest.mark.parametrize("phase", ["ingest", "facts"])
def test_killed_at_a_random_point_then_run_again_exports_as_one_clean_run(
    clean: tuple[str, Run, tuple[str, str]], traffic: Path, tmp_path: Path, phase: str
) -> None:
    kind, reference, expected = clean
    # How long the phase lasted in the clean run: the kill falls inside it.
    length = (
        reference.phases["facts"] - reference.phases["ingest"]
        if phase == "ingest"
        else max(0.2, 0.5 * (reference.phases["facts"] - reference.phases["ingest"]))
    )
    delay = random.Random(f"{SEED}-{kind}-{phase}").uniform(0.05, 0.6) * length
    with empty_store(kind, tmp_path) as store:
        killed = _batch(store, traffic, tmp_path, kill_in=(phase, delay))
        assert killed.returncode == -signal.SIGKILL, (
            f"the run ended before the kill {delay:.2f} s into {phase}: {killed.stderr}"
        )
        again = _batch(store, traffic, tmp_path)
        assert again.returncode == 0, again.stderr
        assert "abandoned   run" in again.stdout
        assert _exports(store, tmp_path) == expected


@pytest.mark.clickhouse
def test_clickhouse_stopped_under_a_run_then_run_again_exports_as_one_clean_run(
    traffic: Path, tmp_path: Path, clean_on_server: tuple[str, Run, tuple[str, str]]
) -> None:
    _, reference, expected = clean_on_server
    server = PrivateClickHouse(tmp_path / "clickhouse")
    server.start()
    try:
        store = server.url("pm_faults")
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(PRESSMETER), "pipeline", "batch", "--input", str(traffic), "--store", store],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )  # fmt: skip
        assert proc.stderr is not None
        for line in proc.stderr:
            if INGEST.search(line):
                break
        ingest = reference.phases["facts"] - reference.phases["ingest"]
        time.sleep(random.Random(f"{SEED}-restart").uniform(0.1, 0.5) * ingest)
        server.stop()
        _, stderr = proc.communicate(timeout=300)
        stopped_after = time.monotonic() - started
        assert proc.returncode == 2, f"{stopped_after:.1f} s: {stderr}"
        assert "Traceback" not in stderr
        assert stderr.splitlines()[-1].startswith("pressmeter: error: "), stderr
        server.start()
        again = _batch(store, traffic, tmp_path)
        assert again.returncode == 0, again.stderr
        assert "abandoned   run" in again.stdout
        assert _exports(store, tmp_path) == expected
    finally:
        server.stop()
