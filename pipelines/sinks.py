"""Writing a run's results to the store: every row carries its run id, so the
ledger decides what counts and a run that dies half way leaves nothing visible."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import pyarrow as pa

from pressmeter.store import open_store

__all__ = ["WriteToStore"]

_FLUSH_ROWS = 500_000


def _as_table(element: Any) -> pa.Table:
    """Arrow tables pass as they are; dicts (one row) and dataclasses become one row."""
    if isinstance(element, pa.Table):
        return element
    row = element if isinstance(element, dict) else vars(element)
    return pa.Table.from_pylist([row])


class WriteTablesFn(beam.DoFn):
    """Buffers rows and inserts them in large blocks (few parts, fast columnar writes)."""

    def __init__(self, store_url: str, table: str, columns: Iterable[str], run_id: str) -> None:
        self.store_url = store_url
        self.table = table
        self.columns = list(columns)
        self.run_id = run_id

    def start_bundle(self) -> None:
        self._pending: list[pa.Table] = []
        self._rows = 0

    def process(self, element: Any) -> Iterator[None]:
        table = _as_table(element).select(self.columns)
        self._pending.append(table)
        self._rows += table.num_rows
        if self._rows >= _FLUSH_ROWS:
            self._flush()
        return iter(())

    def finish_bundle(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending, promote_options="permissive")
        self._pending, self._rows = [], 0
        table = table.append_column("run_id", pa.array([self.run_id] * table.num_rows, pa.string()))
        open_store(self.store_url).insert(self.table, table)


class WriteToStore(beam.PTransform):
    """Insert a PCollection of Arrow tables or row dicts into one store table."""

    def __init__(self, store_url: str, table: str, columns: Iterable[str], run_id: str) -> None:
        super().__init__()
        self.fn = WriteTablesFn(store_url, table, columns, run_id)

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        return rows | f"Insert{self.fn.table.title().replace('_', '')}" >> beam.ParDo(self.fn)
