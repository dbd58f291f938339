"""Step 2 of METRICS.md §2: keep the first copy of each (site_id, event_id).

Within a run the first copy is the one with the smallest `received_at`, ties
going to the one read first. Across runs, a copy whose id an earlier committed
run kept within 7 days is a duplicate, unless it is that very copy read again
(same source and position): then it is a replay and changes nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pressmeter.pipelines.coders import typed_outputs
from pressmeter.store import COMMITTED, Store, open_store, quote

__all__ = ["DUPLICATES", "DUPLICATE_COLUMNS", "REPLAYED", "DeduplicateEvents", "first_copies"]

DUPLICATES = "duplicates"
REPLAYED = "replayed"
CROSS_RUN_WINDOW_MS = 7 * 86_400_000


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


DUPLICATE_COLUMNS = ["site_id", "day", "event_id", "received_at", "source_id", "position", "kind"]


def _as_duplicates(copies: pa.Table, kind: str) -> pa.Table:
    """Rows for `duplicate_events`."""
    return copies.select(DUPLICATE_COLUMNS[:-1]).append_column(
        "kind", pa.array([kind] * copies.num_rows, pa.string())
    )


class DropRepeatedCopiesFn(beam.DoFn):
    """One shard's copies → first copies (main), duplicates and replay counts (tagged).

    A replay is a copy the store already holds (as kept or as a duplicate) from a
    committed run: the same source and position read again. It changes nothing.
    """

    def __init__(self, store_url: str) -> None:
        self.store_url = store_url

    def process(self, keyed: tuple[int, Iterable[pa.Table]]) -> Iterator[object]:
        _, tables = keyed
        store = open_store(self.store_url)
        copies = pa.concat_tables(list(tables))
        firsts, laters = first_copies(copies)
        replayed = 0
        if _sources_read_before(store, copies):
            firsts, replayed_firsts = _drop_replays(store, firsts)
            laters, replayed_laters = _drop_replays(store, laters)
            replayed = replayed_firsts + replayed_laters
        firsts, earlier = _split_kept_earlier(store, firsts)
        if laters.num_rows:
            yield beam.pvalue.TaggedOutput(DUPLICATES, _as_duplicates(laters, "within_run"))
        if earlier.num_rows:
            yield beam.pvalue.TaggedOutput(DUPLICATES, _as_duplicates(earlier, "across_runs"))
        if replayed:
            yield beam.pvalue.TaggedOutput(REPLAYED, replayed)
        if firsts.num_rows:
            yield firsts


def _source_ids(table: pa.Table) -> list[str]:
    """The distinct sources of `table` (from its dictionary, without spelling out rows)."""
    return pc.cast(pc.unique(table["source_id"].combine_chunks()), pa.string()).to_pylist()


def _sources_read_before(store: Store, table: pa.Table) -> bool:
    """Whether a committed run read any of these sources (else nothing can be a replay)."""
    sources = ", ".join(quote(s) for s in _source_ids(table))
    return bool(
        store.rows(
            f"SELECT count() FROM run_sources WHERE {COMMITTED} AND source_id IN ({sources})"
        )[0][0]
    )


def _drop_replays(store: Store, table: pa.Table) -> tuple[pa.Table, int]:
    """(the copies not stored before, how many were)."""
    if not table.num_rows:
        return table, 0
    sources = ", ".join(quote(s) for s in _source_ids(table))
    probe = {
        "source_id": pc.cast(table["source_id"], pa.string()).to_pylist(),
        "position": table["position"].to_pylist(),
    }
    stored = set()
    for stored_table in ("events", "duplicate_events"):
        stored.update(
            store.rows(
                f"SELECT source_id, position FROM {stored_table} WHERE {COMMITTED} "
                f"AND source_id IN ({sources}) "
                "AND (source_id, position) IN (SELECT source_id, toUInt64(position) FROM {probe})",
                probe,
            )
        )
    if not stored:
        return table, 0
    seen = np.array([(s, p) in stored for s, p in zip(probe["source_id"], probe["position"])])
    return table.filter(pa.array(~seen)), int(seen.sum())


def _split_kept_earlier(store: Store, table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(new first copies, copies of ids a committed run kept within 7 days)."""
    if not table.num_rows:
        return table, table
    received = table["received_at"]
    low = pc.min(received).as_py() - CROSS_RUN_WINDOW_MS
    high = pc.max(received).as_py() + CROSS_RUN_WINDOW_MS
    window = f"{COMMITTED} AND received_at BETWEEN {low} AND {high}"
    if not store.rows(f"SELECT count() FROM events WHERE {window}")[0][0]:
        return table, table.slice(0, 0)
    probe = {
        "site_id": pc.cast(table["site_id"], pa.string()).to_pylist(),
        "event_id": table["event_id"].to_pylist(),
    }
    kept_at: dict[tuple[str, str], list[int]] = {}
    for site, event, received_at in store.rows(
        "SELECT site_id, event_id, received_at FROM events "
        f"WHERE {window} AND (site_id, event_id) IN (SELECT site_id, event_id FROM {{probe}})",
        probe,
    ):
        kept_at.setdefault((site, event), []).append(received_at)
    if not kept_at:
        return table, table.slice(0, 0)
    earlier = np.array(
        [
            any(abs(r - mine) <= CROSS_RUN_WINDOW_MS for r in kept_at.get((site, event), ()))
            for site, event, mine in zip(probe["site_id"], probe["event_id"], received.to_pylist())
        ]
    )
    return table.filter(pa.array(~earlier)), table.filter(pa.array(earlier))


class DeduplicateEvents(beam.PTransform):
    """Kept rows → first copies (main), duplicate rows and replay counts (tagged)."""

    def __init__(self, store_url: str, shards: int = 4) -> None:
        super().__init__()
        self.store_url = store_url
        self.shards = shards

    def expand(self, kept: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        outputs = (
            kept
            | "KeyByEventShard"
            >> beam.ParDo(KeyByShardFn(self.shards)).with_output_types(
                beam.typehints.Tuple[int, pa.Table]
            )
            | "GroupCopies" >> beam.GroupByKey()
            | "DropRepeatedCopies"
            >> beam.ParDo(DropRepeatedCopiesFn(self.store_url))
            .with_output_types(pa.Table)
            .with_outputs(DUPLICATES, REPLAYED, main="first")
        )
        typed_outputs(outputs, **{DUPLICATES: pa.Table})
        return outputs
