"""Step 2 of docs/standard.md §2: keep the first copy of each (site_id, event_id).

Within a run the first copy is the one with the smallest `received_at`, ties
going to the one read first. Across runs, a copy whose id an earlier committed
run kept within 7 days is a duplicate, unless it is that very copy read again
(a position of its source a committed run read): then it is a replay and
changes nothing.

The transform never reads the store: what earlier runs (and the earlier steps of
this run, pipelines/steps.py) kept comes in as an input, `prior` copies, and the
committed read ranges of the sources as a side input. The run prepares both
(pipelines/prior.py); a test gives them with `beam.Create`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import NamedTuple

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pressmeter.pipelines.coders import typed_outputs

__all__ = [
    "DUPLICATES",
    "DUPLICATE_COLUMNS",
    "PRIOR_COLUMNS",
    "REPLACED",
    "REPLAYED",
    "DeduplicateEvents",
    "Deduplicated",
    "ReadRange",
    "drop_repeated_copies",
    "first_copies",
]

DUPLICATES = "duplicates"
REPLAYED = "replayed"
REPLACED = "replaced"
CROSS_RUN_WINDOW_MS = 7 * 86_400_000

# A copy kept before: by a committed run, or by an earlier step of this run.
PRIOR_COLUMNS = pa.schema(
    [
        ("site_id", pa.string()),
        ("event_id", pa.string()),
        ("received_at", pa.int64()),
        ("this_run", pa.bool_()),
    ]
)
DUPLICATE_COLUMNS = ["site_id", "day", "event_id", "received_at", "source_id", "position", "kind"]
REPLACED_COLUMNS = ["site_id", "event_id", "received_at"]


class ReadRange(NamedTuple):
    """Positions first..last of a source that a committed run read."""

    source_id: str
    first: int
    last: int


class Deduplicated(NamedTuple):
    """What dedup makes of one shard's copies."""

    firsts: pa.Table  # the copies to keep
    within_run: pa.Table  # later copies of an id this run keeps
    across_runs: pa.Table  # copies of an id a committed run kept within 7 days
    replaced: pa.Table  # REPLACED_COLUMNS: this run's earlier-step copies, now later ones
    replayed: int  # copies a committed run already read


def drop_repeated_copies(
    copies: pa.Table, prior: pa.Table, read_before: Sequence[ReadRange]
) -> Deduplicated:
    """docs/standard.md §2 step 2, deduplication, for one shard's copies.

    `prior`: PRIOR_COLUMNS rows of the ids of `copies` kept before (by committed
    runs, or by earlier steps of this run); `read_before`: the committed read
    ranges of the sources of `copies`. A copy read again from a committed range
    is a replay; a copy of an id a committed run kept within 7 days of it is a
    duplicate across runs. Against this run's earlier steps the rule is the
    within-run one: the smaller `received_at` wins and a tie goes to the copy
    read first, which is the earlier step's; when this step's copy wins, the
    earlier one is `replaced` (the run moves it to the duplicates).
    """
    firsts, laters = first_copies(copies)
    replayed = 0
    if read_before:
        firsts, replayed_firsts = _without_replays(firsts, read_before)
        laters, replayed_laters = _without_replays(laters, read_before)
        replayed = replayed_firsts + replayed_laters
    firsts, across_runs = _split_kept_by_committed_runs(firsts, prior)
    firsts, later_than_earlier_steps, replaced = _against_earlier_steps(firsts, prior)
    within_run = pa.concat_tables([laters, later_than_earlier_steps])
    return Deduplicated(firsts, within_run, across_runs, replaced, replayed)


def first_copies(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(first copies, later copies) of each (site_id, event_id) in `table`.

    A hash aggregation finds the ids seen more than once; only their rows are
    ranked, by sorting them on (id, received_at, read order, row).
    """
    table = table.unify_dictionaries()
    site = _codes(table["site_id"])
    keys = pa.table({"site": site, "event_id": table["event_id"]})
    counts = keys.group_by(["site", "event_id"]).aggregate([("event_id", "count")])
    repeated_ids = counts.filter(pc.greater(counts["event_id_count"], 1))["event_id"]
    if not len(repeated_ids):
        return table, table.slice(0, 0)
    candidates = pa.array(
        np.flatnonzero(
            pc.is_in(table["event_id"], value_set=repeated_ids.combine_chunks()).to_numpy(
                zero_copy_only=False
            )
        )
    )
    ranked = pa.table(
        {
            "site": site.take(candidates),
            "event_id": table["event_id"].take(candidates),
            "received_at": table["received_at"].take(candidates),
            "read_order": table["read_order"].take(candidates),
            "row": candidates,
        }
    )
    order = pc.sort_indices(ranked, [(name, "ascending") for name in ranked.schema.names])
    ranked = ranked.take(order)
    same_id = pc.and_(
        pc.equal(ranked["site"][1:], ranked["site"][:-1]),
        pc.equal(ranked["event_id"][1:], ranked["event_id"][:-1]),
    )
    later = np.zeros(table.num_rows, dtype=bool)
    later[ranked["row"][1:].filter(same_id).to_numpy()] = True
    return table.filter(pa.array(~later)), table.filter(pa.array(later))


def _codes(labels: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary column's codes, comparable across chunks because the caller
    unified its dictionaries: ids to hash without spelling out the strings."""
    if not pa.types.is_dictionary(labels.type):
        return labels
    return pa.chunked_array([chunk.indices for chunk in labels.chunks], pa.int32())


def _without_replays(table: pa.Table, read_before: Sequence[ReadRange]) -> tuple[pa.Table, int]:
    """(the copies no committed run read, how many were)."""
    if not table.num_rows:
        return table, 0
    source = pc.cast(table["source_id"], pa.string())
    position = table["position"]
    seen = np.zeros(table.num_rows, dtype=bool)
    for read in read_before:
        in_range = pc.and_(
            pc.equal(source, read.source_id),
            pc.and_(pc.greater_equal(position, read.first), pc.less_equal(position, read.last)),
        )
        seen |= in_range.to_numpy(zero_copy_only=False)
    return table.filter(pa.array(~seen)), int(seen.sum())


def _matched(table: pa.Table, prior: pa.Table) -> pa.Table:
    """(row, received_at, prior received_at) for each row of `table` whose id is in `prior`."""
    keys = pa.table(
        {
            "site_id": pc.cast(table["site_id"], pa.string()),
            "event_id": table["event_id"],
            "received_at": table["received_at"],
            "row": pa.array(np.arange(table.num_rows)),
        }
    )
    kept = pa.table(
        {
            "site_id": prior["site_id"],
            "event_id": prior["event_id"],
            "prior_received_at": prior["received_at"],
        }
    )
    return keys.join(kept, ["site_id", "event_id"], join_type="inner")


def _split_by_rows(table: pa.Table, rows: np.ndarray) -> tuple[pa.Table, pa.Table]:
    """(the rows of `table` not in `rows`, those in `rows`)."""
    chosen = np.zeros(table.num_rows, dtype=bool)
    chosen[rows] = True
    return table.filter(pa.array(~chosen)), table.filter(pa.array(chosen))


def _split_kept_by_committed_runs(firsts: pa.Table, prior: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(new first copies, copies of ids a committed run kept within 7 days of them)."""
    committed = prior.filter(pc.invert(prior["this_run"]))
    if not firsts.num_rows or not committed.num_rows:
        return firsts, firsts.slice(0, 0)
    matched = _matched(firsts, committed)
    gap = pc.abs(pc.subtract(matched["received_at"], matched["prior_received_at"]))
    close = matched.filter(pc.less_equal(gap, CROSS_RUN_WINDOW_MS))
    return _split_by_rows(firsts, close["row"].to_numpy())


def _against_earlier_steps(
    firsts: pa.Table, prior: pa.Table
) -> tuple[pa.Table, pa.Table, pa.Table]:
    """(first copies, copies later than this run's earlier-step copy, earlier-step
    copies this step's first copies replace, as REPLACED_COLUMNS)."""
    earlier = prior.filter(prior["this_run"])
    empty = PRIOR_COLUMNS.empty_table().select(REPLACED_COLUMNS)
    if not firsts.num_rows or not earlier.num_rows:
        return firsts, firsts.slice(0, 0), empty
    # The copy an earlier step keeps is the one with the smallest received_at.
    kept = earlier.group_by(["site_id", "event_id"]).aggregate([("received_at", "min")])
    kept = kept.rename_columns(["site_id", "event_id", "received_at"])
    matched = _matched(firsts, kept)
    wins = pc.less(matched["received_at"], matched["prior_received_at"])
    firsts, later = _split_by_rows(firsts, matched.filter(pc.invert(wins))["row"].to_numpy())
    replaced = matched.filter(wins)
    replaced = pa.table(
        {
            "site_id": replaced["site_id"],
            "event_id": replaced["event_id"],
            "received_at": replaced["prior_received_at"],
        }
    )
    return firsts, later, replaced


def shard_of(event_ids: pa.ChunkedArray | pa.Array, shards: int) -> np.ndarray:
    """A shard per event id, the same in every process (Python's str hash is salted
    per process): a mix of its last two bytes, read straight from Arrow's buffers.
    Every copy of an id lands in the same shard, which is all dedup needs; random,
    counter and UUID ids spread evenly. Ids are never empty (the schema's pattern)."""
    if isinstance(event_ids, pa.ChunkedArray):
        event_ids = event_ids.combine_chunks()
    if not len(event_ids):
        return np.zeros(0, dtype=np.int64)
    _, offsets_buffer, data_buffer = event_ids.buffers()
    first = event_ids.offset
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[first : first + len(event_ids) + 1]
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    ends = offsets[1:]
    last = data[ends - 1].astype(np.int64)
    before_last = data[np.maximum(ends - 2, offsets[:-1])]
    return (last * 31 + before_last) % shards


class KeyByShardFn(beam.DoFn):
    """Split a batch so that every copy of an id meets the others in one shard."""

    def __init__(self, shards: int) -> None:
        self.shards = shards

    def process(self, table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
        shard = shard_of(table["event_id"], self.shards)
        order = np.argsort(shard, kind="stable")
        bounds = np.searchsorted(shard[order], np.arange(self.shards + 1)).tolist()
        by_shard = table.take(pa.array(order))  # one gather; each shard is a slice of it
        for key, (start, stop) in enumerate(itertools.pairwise(bounds)):
            if stop > start:
                yield key, by_shard.slice(start, stop - start)


def _as_duplicates(copies: pa.Table, kind: str) -> pa.Table:
    """Rows for `duplicate_events`."""
    return copies.select(DUPLICATE_COLUMNS[:-1]).append_column(
        "kind", pa.array([kind] * copies.num_rows, pa.string())
    )


def _concat(tables: Iterable[pa.Table], schema: pa.Schema | None = None) -> pa.Table | None:
    tables = list(tables)
    if not tables:
        return None if schema is None else schema.empty_table()
    return pa.concat_tables(tables, promote_options="permissive")


class DropRepeatedCopiesFn(beam.DoFn):
    """One shard's copies and prior copies → first copies (main), duplicates,
    replaced earlier-step copies and replay counts (tagged)."""

    def process(
        self,
        keyed: tuple[int, dict[str, Iterable[pa.Table]]],
        read_before: Sequence[ReadRange],
    ) -> Iterator[object]:
        _, grouped = keyed
        copies = _concat(grouped["copies"])
        if copies is None:
            return
        prior = _concat(grouped["prior"], PRIOR_COLUMNS)
        ranges = [ReadRange(*read) for read in read_before]
        result = drop_repeated_copies(copies, prior, ranges)
        if result.within_run.num_rows:
            yield beam.pvalue.TaggedOutput(
                DUPLICATES, _as_duplicates(result.within_run, "within_run")
            )
        if result.across_runs.num_rows:
            yield beam.pvalue.TaggedOutput(
                DUPLICATES, _as_duplicates(result.across_runs, "across_runs")
            )
        if result.replaced.num_rows:
            yield beam.pvalue.TaggedOutput(REPLACED, result.replaced)
        if result.replayed:
            yield beam.pvalue.TaggedOutput(REPLAYED, result.replayed)
        if result.firsts.num_rows:
            yield result.firsts


class DeduplicateEvents(beam.PTransform):
    """Kept rows → first copies (main), duplicate rows, replaced earlier-step
    copies and replay counts (tagged).

    `prior`: Arrow tables of PRIOR_COLUMNS, the copies of these ids kept before;
    `read_before`: ReadRange tuples, the committed read ranges of the sources.
    """

    def __init__(
        self, prior: beam.PCollection, read_before: beam.PCollection, shards: int = 4
    ) -> None:
        super().__init__()
        self.prior = prior
        self.read_before = read_before
        self.shards = shards

    def expand(self, kept: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        keyed_type = beam.typehints.Tuple[int, pa.Table]
        by_shard = {
            name: pcoll
            | f"KeyByShard{name.title()}"
            >> beam.ParDo(KeyByShardFn(self.shards)).with_output_types(keyed_type)
            for name, pcoll in (("copies", kept), ("prior", self.prior))
        }
        outputs = (
            by_shard
            | "GroupCopies" >> beam.CoGroupByKey()
            | "DropRepeatedCopies"
            >> beam.ParDo(DropRepeatedCopiesFn(), beam.pvalue.AsList(self.read_before))
            .with_output_types(pa.Table)
            .with_outputs(DUPLICATES, REPLACED, REPLAYED, main="first")
        )
        typed_outputs(outputs, **{DUPLICATES: pa.Table, REPLACED: pa.Table})
        return outputs
