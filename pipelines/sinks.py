"""Writing a run's results to the store: every row carries its run id, so the
ledger decides what counts and a run that dies half way leaves nothing visible."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa

from pressmeter.store import open_store
from pressmeter.store.tables import Table

__all__ = ["WriteToStore"]

_FLUSH_ROWS = 200_000


class WriteTablesFn(beam.DoFn):
    """Buffers rows and inserts them in large blocks (few parts, fast columnar writes).

    Elements are Arrow tables, or single rows as dicts, gathered into one table.
    """

    def __init__(
        self, store_url: str, table: Table, run_id: str, columns: Iterable[str] | None = None
    ) -> None:
        self.store_url = store_url
        self.table = table.name
        self.columns = list(table.without("run_id") if columns is None else columns)
        self.run_id = run_id

    def start_bundle(self) -> None:
        self._tables: list[pa.Table] = []
        self._rows: list[dict[str, Any]] = []
        self._count = 0

    def process(self, element: pa.Table | dict[str, Any]) -> Iterator[None]:
        if isinstance(element, pa.Table):
            self._tables.append(element.select(self.columns))
            self._count += element.num_rows
        else:
            self._rows.append(element)
            self._count += 1
        if self._count >= _FLUSH_ROWS:
            self._flush()
        return iter(())

    def finish_bundle(self) -> None:
        self._flush()

    def _flush(self) -> None:
        if self._rows:
            rows = {name: [row[name] for row in self._rows] for name in self.columns}
            self._tables.append(pa.table(rows))
        if not self._tables:
            return
        table = pa.concat_tables(self._tables, promote_options="permissive")
        self._tables, self._rows, self._count = [], [], 0
        run_ids = pa.DictionaryArray.from_arrays(
            np.zeros(table.num_rows, dtype=np.int32), pa.array([self.run_id])
        )
        table = table.append_column("run_id", run_ids)
        open_store(self.store_url).insert(self.table, table)


class WriteToStore(beam.PTransform):
    """Insert a PCollection of Arrow tables or row dicts into one store table
    (its columns as `pressmeter/store/tables.py` describes them, or the given
    ones, the others taking their defaults; run_id added)."""

    def __init__(
        self, store_url: str, table: Table, run_id: str, columns: Iterable[str] | None = None
    ) -> None:
        super().__init__()
        self.fn = WriteTablesFn(store_url, table, run_id, columns)

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        return rows | f"Insert{self.fn.table.title().replace('_', '')}" >> beam.ParDo(self.fn)
