"""How the dedup step spreads event ids over shards (pipelines/dedup.py)."""

import numpy as np
import pyarrow as pa

from pressmeter.pipelines.dedup import KeyByShardFn, shard_of


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
