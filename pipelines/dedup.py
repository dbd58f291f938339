"""Step 2 of METRICS.md §2: keep the first copy of each (site_id, event_id).

Within a run the first copy is the one with the smallest `received_at`, ties
going to the one read first. Across runs, a copy whose id an earlier committed
run kept within 7 days is a duplicate, unless it is that very copy read again
(same source and position): then it is a replay and changes nothing.
"""

from __future__ import annotations

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

    Ids are hashed first, so only rows whose hash repeats (the copies, and the
    rare collision) are compared exactly: most batches have few duplicates.
    """
    key = id_hash(table)
    order = np.argsort(key, kind="stable")
    repeats = np.zeros(len(key), dtype=bool)
    repeats[1:] = key[order][1:] == key[order][:-1]
    candidates = np.unique(np.concatenate([order[1:][repeats[1:]], order[:-1][repeats[1:]]]))
    later = np.zeros(len(key), dtype=bool)
    if len(candidates):
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


def id_hash(table: pa.Table) -> np.ndarray:
    """A stable 64-bit hash of (site_id, event_id) per row."""
    site = table["site_id"].combine_chunks()
    with np.errstate(over="ignore"):
        site_hash = stable_hash(site.dictionary)[site.indices.to_numpy(zero_copy_only=False)]
        return stable_hash(table["event_id"]) ^ (site_hash * np.uint64(0x9E3779B97F4A7C15))


def duplicate_tally(copies: pa.Table, column: str) -> pa.Table:
    """Copies counted by (site_id, day), in `column`."""
    counts = copies.group_by(["site_id", "day"]).aggregate([("event_id", "count")])
    return counts.rename_columns(["site_id", "day", column])


# Ids and site names are at most 64 characters (event schema).
_HASH_WIDTH = 64
_FNV_OFFSET, _FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)


def stable_hash(strings: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """FNV-1a (64 bit) of each string, the same in every process and run (Python's
    own str hash is salted per process), computed column-wise without a Python loop.

    For ids and site names, which the schema keeps short and ASCII: the strings are
    right-padded with spaces (a character neither may contain) to a common width,
    so the bytes form a matrix hashed one column at a time.
    """
    if isinstance(strings, pa.ChunkedArray):
        strings = strings.combine_chunks()
    count = len(strings)
    hashed = np.full(count, _FNV_OFFSET, dtype=np.uint64)
    if not count:
        return hashed
    width = _HASH_WIDTH
    padded = pc.utf8_rpad(strings, width=width, padding=" ")
    offsets = np.frombuffer(padded.buffers()[1], np.int32, count + 1, padded.offset * 4)
    data = np.frombuffer(padded.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
    matrix = data.reshape(count, width) if width else data.reshape(count, 0)
    with np.errstate(over="ignore"):
        for column in range(width):
            hashed ^= matrix[:, column]
            hashed *= _FNV_PRIME
    return hashed


class KeyByShardFn(beam.DoFn):
    """Split a batch so that every copy of an id meets the others in one shard."""

    def __init__(self, shards: int) -> None:
        self.shards = shards

    def process(self, table: pa.Table) -> Iterator[tuple[int, pa.Table]]:
        shard = stable_hash(table["event_id"]) % np.uint64(self.shards)
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
