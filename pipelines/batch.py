"""A batch run: read a bounded input, store its kept events, recompute the facts
of every site and day it touched, then commit.

Two Beam pipelines, one run:
  ingest: read → parse/validate → deduplicate → store events, rejects, tallies
  facts:  stored events of the touched devices → IVT → visits → per-device
          contributions → store; then each touched site-day's previous figures
          with those devices' rows in place of their old ones (pipelines/generations.py)
A device's figures are recomputed from all of its stored events of those days,
so the numbers do not depend on how the traffic was cut into batches. Nothing a run writes is
seen before the ledger marks it committed; Kafka offsets are committed after.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import apache_beam as beam
import pyarrow as pa
from apache_beam.metrics import Metrics
from apache_beam.metrics.metric import MetricsFilter

from pressmeter.errors import RunFailed
from pressmeter.pipelines import coders
from pressmeter.pipelines.dead_letters import DEAD_LETTER_COLUMNS, DeadLetterRowsFn
from pressmeter.pipelines.dedup import DUPLICATES, REPLACED, REPLAYED, DeduplicateEvents
from pressmeter.pipelines.facts import DEVICE_VALUE_ROWS, ComputeSiteFacts, SiteEvents
from pressmeter.pipelines.generations import finish_facts
from pressmeter.pipelines.incremental import (
    FactsPartition,
    FactsScope,
    ReadSiteEventsFn,
    plan_facts,
)
from pressmeter.pipelines.ledger import Ledger, RunCounts, new_run_id
from pressmeter.pipelines.options import check_workers_reach_store, pipeline_options
from pressmeter.pipelines.parse import AGENTS, REJECTED, REJECTED_COLUMNS, LineBatch, ParseEvents
from pressmeter.pipelines.prior import KEPT_ID_COLUMNS, LookUpPriorCopies, any_kept_ids
from pressmeter.pipelines.sinks import WriteToStore
from pressmeter.pipelines.sources import (
    READS,
    FileSource,
    KafkaSlice,
    ReadFileLinesFn,
    ReadKafkaSliceFn,
    ReadPlanned,
    SourceRead,
    plan_files,
)
from pressmeter.pipelines.steps import (
    STEP_RECORDS,
    plan_steps,
    retire_replaced,
    return_freed_memory,
)
from pressmeter.store import Store, open_store, quote, tables

__all__ = ["BatchRequest", "RunSummary", "run_batch"]

log = logging.getLogger(__name__)
coders.register(LineBatch, SiteEvents)


@dataclass(frozen=True)
class BatchRequest:
    """What to read and where to store. Exactly one of `inputs` and `kafka`."""

    store_url: str
    zone: str
    inputs: list[str] = field(default_factory=list)
    kafka: str | None = None
    topic: str = "pm.events.v1"
    # The ingest service's dead letters, read beside `topic` ("" for none).
    rejected_topic: str = "pm.events.rejected.v1"
    group: str = "pressmeter-batch"
    beam_args: list[str] = field(default_factory=list)
    shards: int = 4
    # Records per ingest step: memory grows with it, not with the input.
    step_records: int = STEP_RECORDS
    # §8 rows beside the site figures; off only to measure what they cost (bench/).
    breakdowns: bool = True


@dataclass
class RunSummary:
    run_id: str
    seconds: float = 0.0
    ingest_seconds: float = 0.0
    facts_seconds: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    read: int = 0
    replayed: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    duplicates_within_run: int = 0
    duplicates_across_runs: int = 0
    kept: int = 0
    site_days: int = 0
    counted: int = 0
    ivt: dict[str, int] = field(default_factory=dict)
    dead_letter_topic: str = ""
    dead_letters: int = 0
    rejected_at_ingest: dict[str, int] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        return self.duplicates_within_run + self.duplicates_across_runs

    def render(self) -> str:
        rejected = _reasons(self.rejected)
        lines = [
            f"run {self.run_id} committed in {self.seconds:.1f} s "
            f"({self.read / max(self.seconds, 1e-9):,.0f} records/s; "
            f"ingest {self.ingest_seconds:.1f} s, facts {self.facts_seconds:.1f} s)",
            f"  read        {self.read:,} records",
            f"  rejected    {sum(self.rejected.values()):,} ({rejected})",
            f"  duplicates  {self.duplicates:,} (within this run {self.duplicates_within_run:,}, "
            f"of earlier runs {self.duplicates_across_runs:,})",
            f"  replayed    {self.replayed:,} (copies already stored: no change)",
            f"  kept        {self.kept:,} new events",
            f"  recomputed  {self.site_days:,} site-days: counted {self.counted:,} events, "
            f"IVT {sum(self.ivt.values()):,} "
            f"(ua {self.ivt.get('ua', 0):,}, datacenter {self.ivt.get('datacenter', 0):,}, "
            f"rate {self.ivt.get('rate', 0):,})",
        ]
        if self.dead_letter_topic:
            at_ingest = _reasons(self.rejected_at_ingest)
            lines.append(
                f"  at ingest   {self.dead_letters:,} dead letters of {self.dead_letter_topic} "
                f"stored as rejected ({at_ingest})"
            )
        lines += [f"  skipped     {name}: {why}" for name, why in self.skipped]
        lines += [
            f"  abandoned   run {run}: died before committing, its rows removed"
            for run in self.abandoned
        ]
        return "\n".join(lines)


def _reasons(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(counts.items())) or "none"


def _ingest_step(
    request: BatchRequest,
    run_id: str,
    step: list,
    read_fn: beam.DoFn,
    ledger: Ledger,
    dead_letters: list[KafkaSlice],
) -> tuple[int, int]:
    """One step's ingest pipeline; returns (replayed copies, replaced copies)."""
    url = request.store_url
    store = open_store(url)
    read_before = ledger.read_ranges(sorted({unit.source_id for unit in step}))
    pipeline = beam.Pipeline(options=pipeline_options(request.beam_args))
    read = pipeline | "Read" >> ReadPlanned(step, read_fn)
    reads = [read[READS]]
    if dead_letters:
        letters = pipeline | "ReadDeadLetters" >> ReadPlanned(dead_letters, ReadKafkaSliceFn())
        reads.append(letters[READS])
        (
            letters.lines
            | "DeadLetterRows" >> beam.ParDo(DeadLetterRowsFn())
            | "KeepIngestRejects"
            >> WriteToStore(url, tables.REJECTED_EVENTS, run_id, DEAD_LETTER_COLUMNS)
        )
    (
        reads
        | "AllReads" >> beam.Flatten()
        | "SourceRows" >> beam.Map(dataclasses.asdict)
        | "RecordSources" >> WriteToStore(url, tables.RUN_SOURCES, run_id)
    )
    parsed = read.lines | "Parse" >> ParseEvents(request.zone)
    parsed[REJECTED] | "KeepRejected" >> WriteToStore(
        url, tables.REJECTED_EVENTS, run_id, REJECTED_COLUMNS.names
    )
    parsed[AGENTS] | "KeepUserAgents" >> WriteToStore(url, tables.USER_AGENTS, run_id)
    if any_kept_ids(store):
        prior = parsed.kept | "PriorCopies" >> LookUpPriorCopies(url, run_id)
    else:
        prior = pipeline | "NoPriorCopies" >> beam.Create([]).with_output_types(pa.Table)
    ranges = pipeline | "ReadBefore" >> beam.Create(read_before)
    unique = parsed.kept | "Deduplicate" >> DeduplicateEvents(prior, ranges, request.shards)
    unique.first | "StoreEvents" >> WriteToStore(url, tables.EVENTS, run_id)
    unique.first | "StoreKeptIds" >> WriteToStore(url, tables.KEPT_IDS, run_id, KEPT_ID_COLUMNS)
    unique[DUPLICATES] | "KeepDuplicates" >> WriteToStore(url, tables.DUPLICATE_EVENTS, run_id)
    unique[REPLACED] | "KeepReplaced" >> WriteToStore(url, tables.REPLACED_COPIES, run_id)
    replays = Metrics.counter("dedup", "replayed")
    unique[REPLAYED] | "CountReplays" >> beam.Map(replays.inc)
    replaced = Metrics.counter("dedup", "replaced")
    unique[REPLACED] | "CountReplaced" >> beam.Map(lambda table: replaced.inc(table.num_rows))
    result = pipeline.run()
    result.wait_until_finish()
    return _counter(result, "replayed"), _counter(result, "replaced")


def _counter(result: beam.runners.runner.PipelineResult, name: str) -> int:
    counters = result.metrics().query(MetricsFilter().with_name(name))["counters"]
    return int(sum(c.committed or 0 for c in counters))


def _ingest(
    request: BatchRequest,
    run_id: str,
    planned: list,
    read_fn: beam.DoFn,
    ledger: Ledger,
    dead_letters: list[KafkaSlice],
) -> int:
    """The ingest phase, in bounded steps (pipelines/steps.py), the dead letters
    cut into steps of their own beside them; returns the number of replayed copies."""
    steps = plan_steps(planned, request.step_records)
    letter_steps = plan_steps(dead_letters, request.step_records)
    count = max(len(steps), len(letter_steps))
    steps += [[]] * (count - len(steps))
    letter_steps += [[]] * (count - len(letter_steps))
    replayed = replaced = 0
    for number, (step, letters) in enumerate(zip(steps, letter_steps), 1):
        log.info("run %s: step %d/%d: %d unit(s)", run_id, number, count, len(step) + len(letters))
        step_replayed, step_replaced = _ingest_step(request, run_id, step, read_fn, ledger, letters)
        return_freed_memory()
        replayed += step_replayed
        replaced += step_replaced
    if replaced:
        log.info("run %s: %d copies kept by earlier steps replaced", run_id, replaced)
        retire_replaced(open_store(request.store_url), run_id)
    return replayed


def facts_phase(
    request: BatchRequest, store: Store, run_id: str, scope: FactsScope | None = None
) -> None:
    """The facts phase: the contributions of the devices in scope (by default the
    run's touched devices), then the site-days.

    One facts pipeline per partition: Beam's local runner holds a pipeline's
    outputs between its stages, so the phase's memory follows PARTITION_EVENTS
    (pipelines/incremental.py), not the size of the run (5M events: 1,592 MiB
    peak in one pipeline, 1,295 MiB one per partition)."""
    partitions = plan_facts(store, run_id, scope or FactsScope.of_run(run_id))
    log.info("run %s: recomputing facts in %d partition(s)", run_id, len(partitions))
    for number, partition in enumerate(partitions, 1):
        if len(partitions) > 1:
            log.info("run %s: facts of partition %d/%d", run_id, number, len(partitions))
        _compute_facts(request, run_id, [partition])
        return_freed_memory()
    if partitions:
        finish_facts(store, run_id, request.breakdowns)


def _compute_facts(request: BatchRequest, run_id: str, partitions: list[FactsPartition]) -> None:
    """The touched devices' contributions (pipelines/facts.py) into the store."""
    url = request.store_url
    with beam.Pipeline(options=pipeline_options(request.beam_args)) as pipeline:
        devices = (
            pipeline
            | "Partitions" >> beam.Create(partitions)
            | "ReadSiteEvents"
            >> beam.ParDo(ReadSiteEventsFn(url, run_id, request.breakdowns)).with_output_types(
                SiteEvents
            )
            | "Facts" >> ComputeSiteFacts(request.zone, request.breakdowns)
        )
        devices.device_days | "StoreDeviceDays" >> WriteToStore(url, tables.DEVICE_DAYS, run_id)
        devices[DEVICE_VALUE_ROWS] | "StoreDeviceValues" >> WriteToStore(
            url, tables.DEVICE_VALUES, run_id
        )


def _summarize(store: Store, summary: RunSummary) -> None:
    run = quote(summary.run_id)
    dead_letter_prefix = f"kafka:{summary.dead_letter_topic}/"
    for source_id, records in store.rows(
        f"SELECT source_id, records FROM run_sources WHERE run_id = {run}"
    ):
        if summary.dead_letter_topic and source_id.startswith(dead_letter_prefix):
            summary.dead_letters += int(records)
        else:
            summary.read += int(records)
    for stage, reason, n in store.rows(
        "SELECT toString(stage) AS s, toString(reason) AS r, count() FROM rejected_events "
        f"WHERE run_id = {run} GROUP BY s, r"
    ):
        counts = summary.rejected_at_ingest if stage == "ingest" else summary.rejected
        counts[reason] = int(n)
    within, across = store.rows(
        "SELECT countIf(kind = 'within_run'), countIf(kind = 'across_runs') "
        f"FROM duplicate_events WHERE run_id = {run}"
    )[0]
    summary.duplicates_within_run, summary.duplicates_across_runs = int(within), int(across)
    summary.kept = int(store.rows(f"SELECT count() FROM events WHERE run_id = {run}")[0][0])
    site_days, counted, ua, dc, rate = store.rows(
        "SELECT count(), sum(counted_events), sum(ivt_ua), sum(ivt_datacenter), sum(ivt_rate) "
        f"FROM daily_facts WHERE run_id = {run}"
    )[0]
    summary.site_days, summary.counted = int(site_days), int(counted or 0)
    summary.ivt = {"ua": int(ua or 0), "datacenter": int(dc or 0), "rate": int(rate or 0)}


def run_batch(request: BatchRequest) -> RunSummary:
    """One batch run, all or nothing."""
    started = time.monotonic()
    check_workers_reach_store(request.store_url, pipeline_options(request.beam_args))
    store = open_store(request.store_url)
    ledger = Ledger(store, request.zone)
    abandoned = ledger.recover()
    run_id = new_run_id()
    summary = RunSummary(run_id, abandoned=abandoned)
    planned, read_fn, slices = _plan(request, ledger, summary)
    dead_letters = [s for s in slices if s.topic != request.topic and s.end > s.start]
    planned = [s for s in planned if s not in dead_letters]
    if request.kafka:
        summary.dead_letter_topic = request.rejected_topic
    ledger.start(
        run_id, "kafka" if request.kafka else "files", request.group if request.kafka else ""
    )
    try:
        if planned or dead_letters:
            log.info("run %s: reading %d source(s)", run_id, len(planned) + len(dead_letters))
            summary.replayed = _ingest(request, run_id, planned, read_fn, ledger, dead_letters)
            summary.ingest_seconds = time.monotonic() - started
            log.info("run %s: ingest phase %.2f s", run_id, summary.ingest_seconds)
            facts_phase(request, store, run_id)
            summary.facts_seconds = time.monotonic() - started - summary.ingest_seconds
        _summarize(store, summary)
        removed = sum(summary.rejected.values()) + summary.duplicates + summary.replayed
        if summary.read != removed + summary.kept:
            raise RunFailed(
                f"counts do not add up: read {summary.read} != rejected + duplicates + replayed "
                f"+ kept = {removed + summary.kept}"
            )
        at_ingest = sum(summary.rejected_at_ingest.values())
        if summary.dead_letters != at_ingest:
            raise RunFailed(
                f"counts do not add up: {summary.dead_letters} dead letters read != "
                f"{at_ingest} stored as rejected at ingest"
            )
        ledger.commit(
            run_id,
            RunCounts(
                summary.read + summary.dead_letters,
                summary.replayed,
                sum(summary.rejected.values()) + at_ingest,
                summary.duplicates,
                summary.kept,
                Ledger.combined_checksum(_reads(store, run_id)),
            ),
        )
    except BaseException as exc:
        ledger.fail(run_id, f"{type(exc).__name__}: {exc}")
        raise
    if request.kafka and slices:
        from pressmeter.pipelines import kafka_slices

        kafka_slices.commit_offsets(request.kafka, request.group, slices)
    summary.seconds = time.monotonic() - started
    return summary


def _reads(store: Store, run_id: str) -> list[SourceRead]:
    names = tables.RUN_SOURCES.list("run_id")
    rows = store.rows(f"SELECT {names} FROM run_sources WHERE run_id = {quote(run_id)}")
    return [SourceRead(*row) for row in rows]


def _plan(
    request: BatchRequest, ledger: Ledger, summary: RunSummary
) -> tuple[list, beam.DoFn, list[KafkaSlice]]:
    """What this run reads: files not read whole before, or the Kafka slices due (of
    the events topic and of the dead-letter topic: the last list holds both)."""
    if request.kafka:
        # Imported here: a file run need not load librdkafka (45 ms of CPU).
        from pressmeter.pipelines import kafka_slices

        stored_next = ledger.kafka_next_offsets(request.topic, request.group)
        slices = kafka_slices.plan_slices(request.kafka, request.topic, request.group, stored_next)
        if request.rejected_topic:
            stored_next = ledger.kafka_next_offsets(request.rejected_topic, request.group)
            slices += kafka_slices.plan_slices(
                request.kafka, request.rejected_topic, request.group, stored_next, len(slices)
            )
        return [s for s in slices if s.end > s.start], ReadKafkaSliceFn(), slices
    files: list[FileSource] = []
    for source in plan_files(request.inputs, request.step_records):
        earlier = ledger.ingested_by(source.source_id)
        if earlier:
            summary.skipped.append((source.path, f"already read by run {earlier}"))
        elif any(f.source_id == source.source_id for f in files):
            summary.skipped.append((source.path, "the same file is listed earlier in this run"))
        else:
            files.append(source)
    return files, ReadFileLinesFn(), []
