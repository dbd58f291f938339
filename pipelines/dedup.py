"""Step 2 of METRICS.md §2: keep the first copy of each (site_id, event_id).

Within a run the first copy is the one with the smallest `received_at`, ties
going to the one read first. Across runs, a copy whose id an earlier committed
run kept within 7 days is a duplicate, unless it is that very copy read again
(same source and position): then it is a replay and changes nothing.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pressmeter.store import open_store

__all__ = ["DUPLICATES", "REPLAYED", "DeduplicateEvents", "first_copies"]

DUPLICATES = "duplicates"
REPLAYED = "replayed"
CROSS_RUN_WINDOW_MS = 7 * 86_400_000


def first_copies(table: pa.Table) -> tuple[pa.Table, pa.Table]:
    """(first copies, later copies) of each (site_id, event_id) in `table`.

    A hash aggregation finds the ids seen more than once; only their rows are
    ranked in Python (most batches have few duplicates).
    """
    keys = pa.table(
        {"site_id": pc.cast(table["site_id"], pa.string()), "event_id": table["event_id"]}
    )
    counts = keys.group_by(["site_id", "event_id"]).aggregate([("event_id", "count")])
    repeated_ids = counts.filter(pc.greater(counts["event_id_count"], 1))["event_id"]
    later = np.zeros(table.num_rows, dtype=bool)
    if len(repeated_ids):
        candidates = np.flatnonzero(
            pc.is_in(table["event_id"], value_set=repeated_ids.combine_chunks()).to_numpy(
                zero_copy_only=False
            )
        )
        rows = (
            table.take(pa.array(candidates))
            .select(["site_id", "event_id", "received_at", "read_order"])
            .to_pylist()
        )
        best: dict[tuple[str, str], tuple[int, int, int]] = {}
        for row_index, row in zip(candidates.tolist(), rows):
            copy_id = (row["site_id"], row["event_id"])
            rank = (row["received_at"], row["read_order"], row_index)
            if copy_id in best:
                later[max(best[copy_id], rank)[2]] = True
                best[copy_id] = min(best[copy_id], rank)
            else:
                best[copy_id] = rank
    return table.filter(pa.array(~later)), table.filter(pa.array(later))


def duplicate_tally(copies: pa.Table, column: str) -> pa.Table:
    """Copies counted by (site_id, day), in `column`."""
    counts = copies.group_by(["site_id", "day"]).aggregate([("event_id", "count")])
    return counts.rename_columns(["site_id", "day", column])


def shard_of(event_ids: pa.ChunkedArray | pa.Array, shards: int) -> np.ndarray:
    """A shard per event id, the same in every process (Python's str hash is salted
    per process): the CRC-32 of its last two characters, computed once per distinct
    suffix. Every copy of an id lands in the same shard, which is all dedup needs;
    random, counter and UUID ids spread evenly."""
    suffixes = pc.dictionary_encode(pc.utf8_slice_codeunits(event_ids, start=-2))
    if isinstance(suffixes, pa.ChunkedArray):
        suffixes = suffixes.combine_chunks()
    by_suffix = np.array(
        [zlib.crc32(s.encode()) % shards for s in suffixes.dictionary.to_pylist()], dtype=np.int64
    )
    return by_suffix[suffixes.indices.to_numpy(zero_copy_only=False)]


class KeyByShardFn(beam.DoFn):
    """Split a batch so that every copy of an id meets the others in one shard."""

    def __init__(self, shards: int) -> None:
        self.shards = shards

    def process(self, table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
        shard = shard_of(table["event_id"], self.shards)
        for key in np.unique(shard):
            yield int(key), table.filter(pa.array(shard == key))


class DropRepeatedCopiesFn(beam.DoFn):
    """One shard's copies → its first copies (main) and later copies (tagged)."""

    def __init__(self, store_url: str) -> None:
        self.store_url = store_url

    def process(self, keyed: tuple[int, Iterable[pa.Table]]) -> Iterator[object]:
        _, tables = keyed
        kept, repeated = first_copies(pa.concat_tables(list(tables)).unify_dictionaries())
        if repeated.num_rows:
            yield beam.pvalue.TaggedOutput(DUPLICATES, duplicate_tally(repeated, "within_run"))
        kept, earlier, replayed = self._split_by_store(kept)
        if earlier.num_rows:
            yield beam.pvalue.TaggedOutput(DUPLICATES, duplicate_tally(earlier, "across_runs"))
        if replayed:
            yield beam.pvalue.TaggedOutput(REPLAYED, replayed)
        if kept.num_rows:
            yield kept

    def _split_by_store(self, table: pa.Table) -> tuple[pa.Table, pa.Table, int]:
        """(new, kept earlier by a committed run, count of replayed copies)."""
        store = open_store(self.store_url)
        received = table["received_at"]
        low = pc.min(received).as_py() - CROSS_RUN_WINDOW_MS
        high = pc.max(received).as_py() + CROSS_RUN_WINDOW_MS
        window = (
            f"run_id IN (SELECT run_id FROM committed_runs) "
            f"AND received_at BETWEEN {low} AND {high}"
        )
        if not store.rows(f"SELECT count() FROM events WHERE {window}")[0][0]:
            return table, table.slice(0, 0), 0
        probe = {
            "site_id": table["site_id"].to_pylist(),
            "event_id": table["event_id"].to_pylist(),
        }
        stored = store.rows(
            "SELECT site_id, event_id, received_at, source_id, position FROM events "
            f"WHERE {window} AND (site_id, event_id) IN "
            "(SELECT site_id, event_id FROM {probe})",
            probe,
        )
        if not stored:
            return table, table.slice(0, 0), 0
        earlier = {(s, e): (r, src, pos) for s, e, r, src, pos in stored}
        verdict = np.zeros(table.num_rows, dtype=np.int8)  # 0 new, 1 duplicate, 2 replay
        rows = zip(
            *(
                table[c].to_pylist()
                for c in ("site_id", "event_id", "received_at", "source_id", "position")
            )
        )
        for i, (site, event, received_at, source, position) in enumerate(rows):
            match = earlier.get((site, event))
            if match is None or abs(match[0] - received_at) > CROSS_RUN_WINDOW_MS:
                continue
            verdict[i] = 2 if (match[1], match[2]) == (source, position) else 1
        return (
            table.filter(pa.array(verdict == 0)),
            table.filter(pa.array(verdict == 1)),
            int((verdict == 2).sum()),
        )


class DeduplicateEvents(beam.PTransform):
    """Kept rows → first copies (main), duplicate tallies and replay counts (tagged)."""

    def __init__(self, store_url: str, shards: int = 4) -> None:
        super().__init__()
        self.store_url = store_url
        self.shards = shards

    def expand(self, kept: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        return (
            kept
            | "KeyByEventShard" >> beam.ParDo(KeyByShardFn(self.shards))
            | "GroupCopies" >> beam.GroupByKey()
            | "DropRepeatedCopies"
            >> beam.ParDo(DropRepeatedCopiesFn(self.store_url)).with_outputs(
                DUPLICATES, REPLAYED, main="first"
            )
        )
