"""The live job: Kafka `pm.events.v1`, unbounded, to per-minute figures in ClickHouse.

Runs on Beam's Prism runner (installed by deploy/local/prism) in streaming
mode, its workers in this process (LOOPBACK); other Beam options pass through,
so the same pipeline goes to a Flink job server (docs/live.md). The job runs
until stopped: SIGTERM or Ctrl-C cancels it, and the next start resumes from
the positions committed to the consumer group (pipelines/live/sinks.py).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import apache_beam as beam
import pyarrow as pa
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from pressmeter.errors import ConfigError, RunFailed
from pressmeter.pipelines import coders
from pressmeter.pipelines.live.kafka_stream import (
    KafkaPoll,
    KafkaRecords,
    ReadTopicFn,
    TopicStart,
    plan_partitions,
)
from pressmeter.pipelines.live.minutes import (
    DeduplicateInMinuteFn,
    MinuteFiguresFn,
    ParseLiveFn,
    carry_devices,
)
from pressmeter.pipelines.live.sinks import (
    CommitPositionsFn,
    Position,
    WriteLiveFiguresFn,
    positions_of,
)
from pressmeter.pipelines.live.timing import LiveTiming
from pressmeter.pipelines.options import check_workers_reach_store
from pressmeter.store import open_store

__all__ = ["LiveFigures", "LiveRequest", "find_prism", "run_live"]

log = logging.getLogger(__name__)
coders.register(KafkaPoll, KafkaRecords)

PRISM_VERSION = "v2.75.0"
MinuteKey = beam.typehints.Tuple[str, int]


@dataclass(frozen=True)
class LiveRequest:
    kafka: str
    store_url: str
    zone: str
    topic: str = "pm.events.v1"
    group: str = "pressmeter-live"
    timing: LiveTiming = field(default_factory=LiveTiming)
    from_beginning: bool = False
    beam_args: list[str] = field(default_factory=list)


class LiveFigures(beam.PTransform):
    """KafkaPoll → SiteMinute and ChannelMinute rows (reads and writes nothing)."""

    def __init__(self, zone: str, timing: LiveTiming) -> None:
        super().__init__()
        self.zone, self.timing = zone, timing

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        keyed = beam.typehints.KV[MinuteKey, pa.Table]
        return (
            records
            | "Parse" >> beam.ParDo(ParseLiveFn(self.zone, self.timing)).with_output_types(keyed)
            | "Deduplicate"
            >> beam.ParDo(DeduplicateInMinuteFn(self.timing)).with_output_types(keyed)
            | "CarryDevices"
            >> beam.FlatMap(carry_devices).with_output_types(
                beam.typehints.KV[MinuteKey, beam.typehints.Tuple[str, pa.Table]]
            )
            | "MinuteFigures" >> beam.ParDo(MinuteFiguresFn(self.timing))
        )


def find_prism() -> str:
    """The Prism binary: $PM_PRISM, or the one deploy/local/prism built."""
    named = os.environ.get("PM_PRISM")
    repo = Path(__file__).resolve().parents[2]
    built = repo / ".cache" / "prism" / PRISM_VERSION / "prism"
    for candidate in (named, str(built), shutil.which("prism")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ConfigError(
        "no Prism runner binary: run deploy/local/prism (or set PM_PRISM, or give "
        "--runner and its options for another runner)"
    )


def _options(beam_args: list[str]) -> PipelineOptions:
    """Prism, streaming, workers in this process, unless the Beam options say otherwise."""
    named = {arg.split("=", 1)[0] for arg in beam_args}
    defaults = ["--streaming"]
    if "--runner" not in named:
        defaults += ["--runner=PrismRunner", "--environment_type=LOOPBACK"]
        if "--prism_location" not in named:
            defaults.append(f"--prism_location={find_prism()}")
    return PipelineOptions(defaults + beam_args)


def build(pipeline: beam.Pipeline, request: LiveRequest, start: TopicStart) -> None:
    """Source → LiveFigures → figure writer, and the positions committed after it."""
    horizon_ms = request.timing.horizon_ms
    records = (
        pipeline
        | "Topic" >> beam.Create([start])
        | "ReadKafka" >> beam.ParDo(ReadTopicFn()).with_output_types(KafkaPoll)
    )
    positioned = beam.typehints.KV[int, Position]
    stored = (
        records
        | "Figures" >> LiveFigures(request.zone, request.timing)
        | "Store" >> beam.ParDo(WriteLiveFiguresFn(request.store_url)).with_output_types(positioned)
    )
    positions = records | "Positions" >> beam.FlatMap(positions_of).with_output_types(positioned)
    (
        (positions, stored)
        | "AfterStored" >> beam.Flatten()
        | "Commit"
        >> beam.ParDo(CommitPositionsFn(request.kafka, request.topic, request.group, horizon_ms))
    )


def run_live(request: LiveRequest) -> int:
    """Run until SIGTERM / Ctrl-C (exit 0) or a failure of the job (RunFailed)."""
    options = _options(request.beam_args)
    check_workers_reach_store(request.store_url, options)
    open_store(request.store_url)  # migrated, and reachable, before the job starts
    start = plan_partitions(
        request.kafka,
        request.topic,
        request.group,
        request.from_beginning,
        request.timing.horizon_ms,
    )
    log.info(
        "live: %s from %s, partitions at %s",
        request.topic,
        request.kafka,
        ", ".join(f"{partition}:{offset}" for partition, offset in start.offsets),
    )
    pipeline = beam.Pipeline(options=options)
    build(pipeline, request, start)
    result = pipeline.run()
    stopping = _StopOnSignal()
    try:
        state = result.wait_until_finish()
    except KeyboardInterrupt:
        state = None
    finally:
        stopping.restore()
    if stopping.signalled or state is None:
        # Beam's worker may print a traceback for the bundle a cancel cuts short
        # (KeyError 'inst…'): harmless, only committed positions count on restart.
        log.info("live: stopping; the next start resumes from the committed positions")
        result.cancel()
        return 0
    if state != PipelineState.DONE:
        raise RunFailed(f"the live job ended in state {state}")
    return 0


class _StopOnSignal:
    """SIGTERM ends the wait like Ctrl-C does."""

    def __init__(self) -> None:
        self.signalled = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signalled = True
        raise KeyboardInterrupt

    def restore(self) -> None:
        signal.signal(signal.SIGTERM, self._previous)
