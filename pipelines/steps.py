"""A run in bounded steps: the planned input cut into steps of at most N records,
each step one Beam pipeline of ingest, so memory depends on N, not on the input.

Beam's local runner holds a whole PCollection between stages; cutting the input
bounds what it holds. A step's rows carry the run id like any other, so the run
stays all or nothing: a kill between steps leaves an uncommitted run that the
next one abandons. Dedup sees the earlier steps' kept copies as prior copies of
this run (pipelines/prior.py); when a later step holds a copy received earlier
than the one an earlier step kept, that earlier copy is replaced: before the run
commits, `retire_replaced` moves it from the kept events to the duplicates, so
the first copy is the same as if the run had been one step.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
from collections.abc import Sequence

from pressmeter.pipelines.sources import FileChunk, FileSource, KafkaSlice
from pressmeter.store import Store, quote

__all__ = ["STEP_RECORDS", "plan_steps", "retire_replaced", "return_freed_memory"]

# Records per step by default: about 0.5 GiB of the local runner's memory.
STEP_RECORDS = 500_000


def return_freed_memory() -> None:
    """Hands the C heap's freed pages back to the system after a step (glibc's
    `malloc_trim`): a step's Arrow buffers, chDB's and librdkafka's are freed when
    it ends, but glibc keeps freed pages in its arenas, and the run's peak memory
    then grows with the steps. A no-op where the C library has no such call."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _records(unit: FileChunk | KafkaSlice) -> int:
    return unit.records if isinstance(unit, FileChunk) else unit.end - unit.start


def _units(planned: Sequence[FileSource | KafkaSlice], step_records: int) -> list:
    """File chunks, or Kafka slices cut into pieces of at most `step_records` offsets."""
    units: list[FileChunk | KafkaSlice] = []
    for source in planned:
        if isinstance(source, FileSource):
            units += source.chunks()
            continue
        for start in range(source.start, source.end, step_records):
            units.append(
                dataclasses.replace(source, start=start, end=min(start + step_records, source.end))
            )
    return units


def plan_steps(
    planned: Sequence[FileSource | KafkaSlice], step_records: int
) -> list[list[FileChunk | KafkaSlice]]:
    """Consecutive units packed into steps of at most `step_records` records, in
    read order (a unit never straddles two steps; files are cut at planning)."""
    steps: list[list[FileChunk | KafkaSlice]] = []
    size = step_records
    for unit in _units(planned, step_records):
        records = _records(unit)
        if size + records > step_records:
            steps.append([])
            size = 0
        steps[-1].append(unit)
        size += records
    return steps


def _replaced(run: str) -> str:
    return (
        f"run_id = {run} AND (site_id, event_id, received_at) IN "
        f"(SELECT site_id, event_id, received_at FROM replaced_copies WHERE run_id = {run})"
    )


def retire_replaced(store: Store, run_id: str) -> None:
    """Move this run's replaced copies from `events` and `kept_ids` to
    `duplicate_events` (within the run), and wait until the store has."""
    run = quote(run_id)
    store.execute(
        "INSERT INTO duplicate_events "
        "(site_id, day, event_id, received_at, source_id, position, kind, run_id) "
        "SELECT site_id, day, event_id, received_at, source_id, position, 'within_run', run_id "
        f"FROM events WHERE {_replaced(run)}"
    )
    store.delete(("events", "kept_ids"), _replaced(run))
