"""The steps of dedup (pipelines/dedup.py): spreading ids over shards, then
keeping the first copy of each id within a shard; and the bounded steps of a
run (pipelines/steps.py): files cut into chunks of lines, chunks packed into steps."""

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pressmeter.errors import InputError
from pressmeter.pipelines.dedup import KeyByShardFn, first_copies, shard_of
from pressmeter.pipelines.sources import (
    FileChunk,
    KafkaSlice,
    ReadFileLinesFn,
    SourceRead,
    plan_files,
)
from pressmeter.pipelines.steps import plan_steps


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


# ------------------------------------------------------------------ bounded steps


def _chunks(path: Path, chunk_lines: int) -> list[tuple[int, int, int, int]]:
    (source,) = plan_files([str(path)], chunk_lines)
    return [(c.first_position, c.start, c.end, c.records) for c in source.chunks()]


def test_a_file_is_cut_into_chunks_of_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "five.jsonl"
    path.write_bytes(b"aa\nb\n\nccc\nd")  # 5 lines, the last without its newline
    assert _chunks(path, 2) == [(1, 0, 5, 2), (3, 5, 10, 2), (5, 10, 11, 1)]
    assert _chunks(path, 5) == [(1, 0, 11, 5)]
    path.write_bytes(b"aa\nb\n")  # ends exactly at a cut: no empty chunk after it
    assert _chunks(path, 2) == [(1, 0, 5, 2)]
    path.write_bytes(b"")
    assert _chunks(path, 2) == [(1, 0, 0, 0)]


def test_a_gzip_file_is_cut_at_offsets_of_its_text(tmp_path: Path) -> None:
    path = tmp_path / "three.jsonl.gz"
    path.write_bytes(gzip.compress(b"aa\nb\nccc\n"))
    assert _chunks(path, 2) == [(1, 0, 5, 2), (3, 5, 9, 1)]


def _read(chunk: FileChunk) -> tuple[list[bytes], SourceRead]:
    outputs = list(ReadFileLinesFn().process(chunk))
    lines = [line for batch in outputs[:-1] for line in batch.lines]
    return lines, outputs[-1].value


def test_each_chunk_reads_its_own_lines_and_positions(tmp_path: Path) -> None:
    for name, data in (("p.jsonl", b"aa\nb\n\nccc\nd"), ("g.jsonl.gz", b"aa\nb\n\nccc\nd")):
        path = tmp_path / name
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
        (source,) = plan_files([str(path)], 2)
        read = [_read(chunk) for chunk in source.chunks()]
        assert [lines for lines, _ in read] == [[b"aa", b"b"], [b"", b"ccc"], [b"d"]]
        ranges = [(r.first_position, r.last_position, r.records) for _, r in read]
        assert ranges == [(1, 2, 2), (3, 4, 2), (5, 5, 1)]
        # Out of order (a parked .gz reader is at another offset): each chunk still
        # reads its own lines.
        assert [_read(chunk)[0] for chunk in reversed(source.chunks())] == [
            [b"d"],
            [b"", b"ccc"],
            [b"aa", b"b"],
        ]


def test_a_file_changed_after_planning_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "changing.jsonl"
    path.write_bytes(b"a\nb\nc\n")
    (source,) = plan_files([str(path)], 2)
    path.write_bytes(b"a b\nc\n")
    with pytest.raises(InputError, match="changed while it was read"):
        _read(source.chunks()[0])


def test_steps_pack_units_in_read_order_up_to_the_step_size(tmp_path: Path) -> None:
    small, big = tmp_path / "small.jsonl", tmp_path / "big.jsonl"
    small.write_bytes(b"1\n2\n")
    big.write_bytes(b"1\n2\n3\n4\n5\n")
    files = plan_files([str(small), str(big)], 3)
    kafka = KafkaSlice(0, "b:9092", "t", 0, 10, 17)
    steps = plan_steps([*files, kafka], 3)
    shape = [
        [(u.source_id[-4:], u.first_position, u.records) if isinstance(u, FileChunk)
         else ("kafka", u.start, u.end) for u in step]
        for step in steps
    ]  # fmt: skip
    s, b = files[0].source_id[-4:], files[1].source_id[-4:]
    assert shape == [
        [(s, 1, 2)],
        [(b, 1, 3)],
        [(b, 4, 2)],
        [("kafka", 10, 13)],
        [("kafka", 13, 16)],
        [("kafka", 16, 17)],
    ]
