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
    return PipelineOptions(defaults + beam_args)


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
