"""What dedup needs to know of earlier runs, read from the store by the run
(pipelines/dedup.py never reads): the kept copies of a shard's ids, looked up
in `kept_ids` (sorted by a hash of the id, schemas/clickhouse/0008_kept_ids.sql),
and the committed read ranges of the sources (the ledger's `run_sources`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc

from pressmeter.pipelines.dedup import CROSS_RUN_WINDOW_MS, PRIOR_COLUMNS
from pressmeter.store import COMMITTED, Store, open_store, quote, tables

__all__ = ["LookUpPriorCopies", "any_kept_ids"]

# The columns of `kept_ids` a run writes for each kept event (the store adds the
# hash, the sink the run id).
KEPT_ID_COLUMNS = list(tables.KEPT_IDS.without("id_hash", "run_id"))


def any_kept_ids(store: Store) -> bool:
    """Whether any run kept an id yet (else there is nothing to look up)."""
    return bool(store.rows("SELECT count() FROM (SELECT 1 FROM kept_ids LIMIT 1)")[0][0])


def prior_copies_sql(run_id: str, low: int, high: int) -> str:
    """SQL: the kept copies, by committed runs or by this run's earlier steps, of
    the ids in `{probe}` received within [low, high]. The hash condition reads
    the sort key only; the exact ids are compared where a hash matched."""
    run = quote(run_id)
    return (
        f"SELECT site_id, event_id, received_at, run_id = {run} FROM kept_ids "
        "PREWHERE id_hash IN (SELECT cityHash64(site_id, event_id) FROM {probe}) "
        "WHERE (site_id, event_id) IN (SELECT site_id, event_id FROM {probe}) "
        f"AND received_at BETWEEN {low} AND {high} AND (run_id = {run} OR {COMMITTED})"
    )


class LookUpPriorCopiesFn(beam.DoFn):
    """A step's ids → the copies of them kept before (PRIOR_COLUMNS)."""

    def __init__(self, store_url: str, run_id: str) -> None:
        self.store_url, self.run_id = store_url, run_id

    def process(self, keyed: tuple[int, Iterable[pa.Table]]) -> Iterator[pa.Table]:
        _, tables = keyed
        ids = pa.concat_tables(list(tables)).unify_dictionaries()
        received = ids["received_at"]
        low = pc.min(received).as_py() - CROSS_RUN_WINDOW_MS
        high = pc.max(received).as_py() + CROSS_RUN_WINDOW_MS
        probe = pa.table(
            {"site_id": pc.cast(ids["site_id"], pa.string()), "event_id": ids["event_id"]}
        ).combine_chunks()
        rows = open_store(self.store_url).rows(prior_copies_sql(self.run_id, low, high), probe)
        if rows:
            site_ids, event_ids, received_at, this_run = zip(*rows)
            yield pa.table(
                [
                    pa.array(site_ids, pa.string()),
                    pa.array(event_ids, pa.string()),
                    pa.array(received_at, pa.int64()),
                    pa.array([bool(mine) for mine in this_run], pa.bool_()),
                ],
                schema=PRIOR_COLUMNS,
            )


class LookUpPriorCopies(beam.PTransform):
    """Kept rows → the copies of their ids kept before, in one lookup per pipeline.

    One query for all the ids: with random ids, any sizeable probe touches every
    index granule of the window, so a query per shard would read it per shard.
    """

    def __init__(self, store_url: str, run_id: str) -> None:
        super().__init__()
        self.store_url, self.run_id = store_url, run_id

    def expand(self, kept: beam.PCollection) -> beam.PCollection:
        return (
            kept
            | "Ids"
            >> beam.Map(lambda table: (0, table.select(KEPT_ID_COLUMNS))).with_output_types(
                beam.typehints.Tuple[int, pa.Table]
            )
            | "GatherIds" >> beam.GroupByKey()
            | "LookUp"
            >> beam.ParDo(LookUpPriorCopiesFn(self.store_url, self.run_id)).with_output_types(
                pa.Table
            )
        )
