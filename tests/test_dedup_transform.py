"""DeduplicateEvents as a transform (docs/standard.md §2 step 2): it reads nothing, so
its prior copies and the committed read ranges come in with `beam.Create`, as
the batch run's lookups (pipelines/prior.py) or a streaming pipeline give them."""

from __future__ import annotations

import apache_beam as beam
import pyarrow as pa
from apache_beam.testing import test_pipeline
from apache_beam.testing.util import assert_that, equal_to

from pressmeter.pipelines.dedup import (
    DUPLICATES,
    PRIOR_COLUMNS,
    REPLACED,
    REPLAYED,
    DeduplicateEvents,
    ReadRange,
    drop_repeated_copies,
)

DAY_MS = 86_400_000
T0 = 1_790_000_000_000


def copies(*rows: tuple[str, str, int, str, int]) -> pa.Table:
    """Kept rows as parse makes them: (site, event id, received_at, source, position)."""
    site, event, received, source, position = (list(column) for column in zip(*rows))
    return pa.table(
        {
            "site_id": pa.array(site).dictionary_encode(),
            "day": [20_000] * len(rows),
            "event_id": event,
            "received_at": received,
            "source_id": pa.array(source).dictionary_encode(),
            "position": pa.array(position, pa.uint64()),
            "read_order": pa.array(position, pa.uint64()),
        }
    )


def prior(*rows: tuple[str, str, int, bool]) -> pa.Table:
    site, event, received, this_run = (list(column) for column in zip(*rows))
    return pa.table([site, event, received, this_run], schema=PRIOR_COLUMNS)


def _ids(table: pa.Table) -> list[tuple[str, str, int]]:
    return [(r["site_id"], r["event_id"], r["received_at"]) for r in table.to_pylist()]


def test_the_transform_runs_on_created_inputs() -> None:
    batch = copies(
        ("a", "e1", T0 + 5, "f", 1),
        ("a", "e1", T0 + 3, "f", 2),  # the first copy of a/e1: received first
        ("a", "e2", T0, "f", 3),  # a committed run kept a/e2 6 days before: a duplicate
        ("a", "e3", T0, "f", 4),  # kept 8 days before: outside the window, a new copy
        ("b", "e4", T0 + 1, "f", 5),  # this run's earlier step kept b/e4 later: replaces it
        ("b", "e5", T0 + 9, "f", 6),  # this run's earlier step kept b/e5 earlier: a duplicate
        ("b", "e6", T0, "k", 7),  # a position a committed run read: a replay
    )
    known = prior(
        ("a", "e2", T0 - 6 * DAY_MS, False),
        ("a", "e3", T0 - 8 * DAY_MS, False),
        ("b", "e4", T0 + 2, True),
        ("b", "e5", T0 + 9, True),
    )
    with test_pipeline.TestPipeline() as pipeline:
        result = (
            pipeline
            | "Copies" >> beam.Create([batch.slice(0, 4), batch.slice(4)])
            | DeduplicateEvents(
                pipeline | "Prior" >> beam.Create([known]),
                pipeline | "ReadBefore" >> beam.Create([ReadRange("k", 5, 9)]),
            )
        )
        firsts = result.first | "FirstIds" >> beam.FlatMap(_ids)
        assert_that(
            firsts,
            equal_to([("a", "e1", T0 + 3), ("a", "e3", T0), ("b", "e4", T0 + 1)]),
            label="Firsts",
        )
        duplicates = result[DUPLICATES] | "DuplicateRows" >> beam.FlatMap(
            lambda t: [(r["event_id"], r["position"], r["kind"]) for r in t.to_pylist()]
        )
        assert_that(
            duplicates,
            equal_to([("e1", 1, "within_run"), ("e5", 6, "within_run"), ("e2", 3, "across_runs")]),
            label="Duplicates",
        )
        replaced = result[REPLACED] | "ReplacedIds" >> beam.FlatMap(_ids)
        assert_that(replaced, equal_to([("b", "e4", T0 + 2)]), label="Replaced")
        assert_that(result[REPLAYED], equal_to([1]), label="Replayed")


def test_a_tie_with_an_earlier_step_goes_to_the_copy_read_first() -> None:
    # The earlier step's copy was read before any copy of this step.
    result = drop_repeated_copies(copies(("a", "e1", T0, "f", 9)), prior(("a", "e1", T0, True)), [])
    assert (result.firsts.num_rows, result.within_run.num_rows, result.replaced.num_rows) == (
        0,
        1,
        0,
    )


def test_the_window_is_seven_days_either_side_inclusive() -> None:
    batch = copies(("a", "e1", T0, "f", 1), ("a", "e2", T0, "f", 2), ("a", "e3", T0, "f", 3))
    known = prior(
        ("a", "e1", T0 + 7 * DAY_MS, False),  # 7 days later: still a duplicate
        ("a", "e2", T0 - 7 * DAY_MS - 1, False),  # 1 ms beyond: a new copy
        ("b", "e3", T0, False),  # the same id on another site: a new copy
    )
    result = drop_repeated_copies(batch, known, [])
    assert result.across_runs["event_id"].to_pylist() == ["e1"]
    assert sorted(result.firsts["event_id"].to_pylist()) == ["e2", "e3"]


def test_a_replay_of_a_later_copy_is_counted_once_as_a_replay() -> None:
    # Both copies of e1 were read before (positions 1 and 2 of source k): 2 replays.
    batch = copies(("a", "e1", T0, "k", 1), ("a", "e1", T0 + 1, "k", 2), ("a", "e2", T0, "k", 3))
    result = drop_repeated_copies(batch, prior(("x", "x", 0, False)), [ReadRange("k", 1, 2)])
    assert result.replayed == 2
    assert result.firsts["event_id"].to_pylist() == ["e2"]
    assert result.within_run.num_rows == 0
