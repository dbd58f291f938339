"""Beam pipeline options pass through `pressmeter pipeline batch`: the same run on
other runner settings gives the same numbers, and a runner whose workers cannot
open the embedded store is refused in one line before anything is written."""

from __future__ import annotations

import time
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.coders import Coder
from apache_beam.coders.coder_impl import StreamCoderImpl
from apache_beam.coders.slow_stream import InputStream, OutputStream
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to
from support import Runner, cli, empty_store, fresh_store, one_error_line

from pressmeter.pipelines.options import pipeline_options
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


class Payload(bytes):
    """Bytes with a coder of their own (below)."""


class _HalvingCoderImpl(StreamCoderImpl):
    """Writes each element in two halves, 1.2 s apart: longer than the embedded
    worker's periodic flush (1 s in Beam 2.75), so an unguarded flush lands between."""

    def encode_to_stream(self, value: bytes, stream: OutputStream, nested: bool) -> None:
        stream.write_var_int64(len(value))
        stream.write(value[:1])
        time.sleep(1.2)
        stream.write(value[1:])

    def decode_from_stream(self, stream: InputStream, nested: bool) -> Payload:
        return Payload(stream.read(stream.read_var_int64()))


class _HalvingCoder(Coder):
    def _create_impl(self) -> StreamCoderImpl:
        return _HalvingCoderImpl()

    def is_deterministic(self) -> bool:
        return True

    def to_type_hint(self) -> type:
        return Payload


beam.coders.registry.register_coder(Payload, _HalvingCoder)


def test_multi_threaded_workers_never_cut_an_element_in_two() -> None:
    """Beam's multi_threading worker flushes its output every second from a timer
    thread, unguarded against the thread writing it: an element half written reached
    the runner in two chunks, and a GroupByKey failed decoding them (4 of 10 runs of
    300k events). With the options a batch run uses, an element arrives whole."""
    options = pipeline_options(["--direct_num_workers=2", "--direct_running_mode=multi_threading"])
    with test_pipeline.TestPipeline(options=options) as pipeline:
        grouped = (
            pipeline
            | beam.Create([b"first", b"second"])
            | beam.Map(lambda v: ("k", Payload(v))).with_output_types(tuple[str, Payload])
            | beam.GroupByKey()
            | beam.MapTuple(lambda _, values: sorted(bytes(v) for v in values))
        )
        assert_that(grouped, equal_to([[b"first", b"second"]]))
