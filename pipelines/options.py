"""Beam pipeline options of a batch run, and whether its workers can reach the store.

Options `pressmeter pipeline batch` does not know are Beam's, so the same run can
go to Flink or Dataflow. The embedded store (chDB) lives inside the command's
own process and locks its folder; workers in other processes or on other
machines cannot open it, so such a run is refused before it writes anything.
"""

from __future__ import annotations

from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    PortableOptions,
    StandardOptions,
)

from pressmeter.errors import ConfigError

__all__ = ["check_workers_reach_store", "pipeline_options"]

# Runners whose workers run inside the submitting process (Prism in its default
# LOOPBACK environment; DirectRunner may hand over to Prism or FnApiRunner).
_IN_PROCESS_RUNNERS = {
    "FnApiRunner",
    "DirectRunner",
    "SwitchingDirectRunner",
    "BundleBasedDirectRunner",
    "PrismRunner",
}


def pipeline_options(beam_args: list[str]) -> PipelineOptions:
    """Beam's local runner unless the caller's Beam options say otherwise.

    The default is FnApiRunner, named rather than reached through DirectRunner:
    DirectRunner first tries Prism (a Go job server it downloads) and only then
    falls back to FnApiRunner, which costs a network attempt and a gRPC worker
    pool that polls for the rest of the run.
    """
    defaults = [
        "--runner=FnApiRunner",
        "--direct_num_workers=1",
        "--direct_running_mode=in_memory",
    ]
    options = PipelineOptions(defaults + beam_args)
    if options.view_as(DirectOptions).direct_running_mode == "multi_threading":
        _flush_worker_output_whole_elements_only()
    return options


def _flush_worker_output_whole_elements_only() -> None:
    """Turn off the periodic flush of FnApiRunner's in-process gRPC workers.

    In Beam 2.75 the multi_threading workers (and the runner's side of their data
    channel) flush their output buffers every second from a timer thread, unguarded
    against the thread writing an element: an element cut in two reached the runner
    as two chunks, and a GroupByKey either failed decoding them or decoded garbage
    (tests/test_beam_options.py). A batch needs no time-based flush: without it the
    buffers are flushed by size, between elements, and when a bundle ends, which is
    what Beam's own multi_processing workers do by default. The limit is a module
    constant read when a worker starts, so it is set before the pipeline runs.
    """
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 0


def check_workers_reach_store(store_url: str, options: PipelineOptions) -> None:
    """Refuse, in one line, an embedded store with workers outside this process."""
    if not store_url.startswith("chdb:"):
        return
    runner = str(options.view_as(StandardOptions).runner or "FnApiRunner")
    name = runner.rsplit(".", 1)[-1]
    environment = options.view_as(PortableOptions).environment_type or "LOOPBACK"
    mode = options.view_as(DirectOptions).direct_running_mode
    if name not in _IN_PROCESS_RUNNERS:
        why = f"--runner={runner}"
    elif mode == "multi_processing":
        why = "--direct_running_mode=multi_processing"
    elif environment.upper() != "LOOPBACK":
        why = f"--environment_type={environment}"
    else:
        return
    raise ConfigError(
        f"{why} runs workers outside this process, which cannot open the embedded "
        f"store {store_url}: use --store clickhouse://host:port/db"
    )
