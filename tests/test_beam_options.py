"""Beam pipeline options pass through `pressmeter pipeline batch`: the same run on
other runner settings gives the same numbers, and a runner whose workers cannot
open the embedded store is refused in one line before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import Runner, cli, empty_store, fresh_store, one_error_line

from pressmeter.store import close_stores


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("traffic") / "traffic.jsonl"
    done = cli(
        "simulate", "--outlets", "4", "--days", "2", "--events-per-day", "2500",
        "--start", "2026-10-31", "--out", str(out), cwd=out.parent,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out


def _same_as_default(store_url: str, folder: Path, traffic: Path, beam_args: list[str]) -> None:
    """A run with `beam_args` and a default run, each into an empty store: same
    summary counts and the same day and month export."""
    tuned = Runner(store_url, folder)
    summary = tuned.files([traffic], beam_args=beam_args)
    got = tuned.export(), tuned.export("month")
    close_stores()  # chDB: one folder open per process
    with fresh_store(store_url, folder) as other:
        default = Runner(other, folder)
        reference = default.files([traffic])
        expected = default.export(), default.export("month")
    counts = ("read", "rejected", "duplicates", "kept", "counted", "ivt")
    assert [getattr(summary, c) for c in counts] == [getattr(reference, c) for c in counts]
    assert summary.kept > 4_500 and summary.duplicates > 0 and summary.rejected
    assert got == expected
    assert len(expected[1]) == 8  # 4 outlets x October and November


def test_a_multi_threaded_runner_counts_the_same(
    store_url: str, tmp_path: Path, traffic: Path
) -> None:
    args = ["--direct_num_workers=2", "--direct_running_mode=multi_threading"]
    _same_as_default(store_url, tmp_path, traffic, args)


@pytest.mark.clickhouse
def test_workers_in_other_processes_count_the_same_on_a_server(
    tmp_path: Path, traffic: Path
) -> None:
    with empty_store("server", tmp_path) as url:
        args = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
        _same_as_default(url, tmp_path, traffic, args)


@pytest.mark.parametrize(
    ("beam_args", "named"),
    [
        (["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
         "--direct_running_mode=multi_processing"),
        (["--runner=FlinkRunner"], "--runner=FlinkRunner"),
        (["--runner=PortableRunner", "--environment_type=DOCKER"], "--runner=PortableRunner"),
        (["--runner=PrismRunner", "--environment_type=DOCKER"], "--environment_type=DOCKER"),
    ],
)  # fmt: skip
def test_the_embedded_store_refuses_workers_outside_the_process(
    tmp_path: Path, traffic: Path, beam_args: list[str], named: str
) -> None:
    store = tmp_path / "store"
    done = cli(
        "pipeline", "batch", "--input", str(traffic), "--store", f"chdb:{store}", *beam_args,
        cwd=tmp_path,
    )  # fmt: skip
    line = one_error_line(done)
    assert named in line and f"chdb:{store}" in line and "--store clickhouse://" in line
    assert not store.exists()  # refused before the store was even opened
