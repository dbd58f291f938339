"""The steps of dedup (pipelines/dedup.py): spreading ids over shards, then
keeping the first copy of each id within a shard."""

import numpy as np
import pyarrow as pa

from pressmeter.pipelines.dedup import KeyByShardFn, first_copies, shard_of


def test_shard_mixes_the_last_two_bytes_of_the_id() -> None:
    # "ab": 98 * 31 + 97 = 3135 → 3; "b" (one byte, used twice): 98 * 32 = 3136 → 0;
    # "xyz": 122 * 31 + 121 = 3903 → 3.
    assert shard_of(pa.array(["ab", "b", "xyz"]), 4).tolist() == [3, 0, 3]


def test_shard_reads_slices_and_chunks_from_their_own_bytes() -> None:
    sliced = pa.array(["zz", "ab", "b", "xyz"]).slice(1)
    chunked = pa.chunked_array([["ab"], ["b", "xyz"]])
    assert shard_of(sliced, 4).tolist() == [3, 0, 3]
    assert shard_of(chunked, 4).tolist() == [3, 0, 3]
    assert shard_of(pa.array([], pa.string()), 4).tolist() == []


def test_hex_ids_spread_evenly() -> None:
    ids = pa.array([f"{n * 2654435761 % 2**64:016x}" for n in range(40_000)])
    counts = np.bincount(shard_of(ids, 4), minlength=4)
    assert counts.min() > 9_000 and counts.max() < 11_000


def test_every_row_goes_to_its_shard_once_in_its_order() -> None:
    table = pa.table({"event_id": ["ab", "b", "xyz", "cb", "b"], "n": [0, 1, 2, 3, 4]})
    keyed = {key: part.column("n").to_pylist() for key, part in KeyByShardFn(4).process(table)}
    # "cb": 98 * 31 + 99 = 3137 → 1.
    assert keyed == {0: [1, 4], 1: [3], 3: [0, 2]}


def test_first_copy_is_the_earliest_received_then_the_first_read() -> None:
    def batch(sites: list[str], ids: list[str], received: list[int], rows: range) -> pa.Table:
        return pa.table(
            {
                "site_id": pa.array(sites).dictionary_encode(),
                "event_id": ids,
                "received_at": received,
                "read_order": list(rows),
                "row": list(rows),
            }
        )

    # Two batches whose site dictionaries differ in order, as a shard receives them.
    copies = pa.concat_tables(
        [
            batch(["a", "a", "b"], ["e1", "e2", "e1"], [5, 1, 1], range(0, 3)),
            batch(["b", "a", "a"], ["e1", "e1", "e3"], [1, 3, 9], range(3, 6)),
        ]
    )
    firsts, laters = first_copies(copies)
    # a/e1: row 4 (received 3) beats row 0 (received 5); b/e1: a tie at 1, row 2 was read first.
    assert sorted(firsts["row"].to_pylist()) == [1, 2, 4, 5]
    assert sorted(laters["row"].to_pylist()) == [0, 3]


def test_a_shard_without_repeated_ids_is_kept_whole() -> None:
    table = pa.table(
        {
            "site_id": pa.array(["a", "b"]).dictionary_encode(),
            "event_id": ["e1", "e1"],
            "received_at": [1, 2],
            "read_order": [0, 1],
        }
    )
    firsts, laters = first_copies(table)
    assert firsts.num_rows == 2 and laters.num_rows == 0
