"""The store interface, URL parsing and migrations, shared by both backends."""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from pressmeter import schemas
from pressmeter.errors import StoreError

__all__ = [
    "COMMITTED",
    "CURRENT_FACTS",
    "Store",
    "StoreError",
    "current_device_days",
    "current_devices",
    "open_store",
    "quote",
]

Columns = dict[str, Sequence[Any]]
# Rows of committed runs only (schemas/clickhouse/0001_ledger.sql).
COMMITTED = "run_id IN (SELECT run_id FROM committed_runs)"
# Fact rows of the current generation of their site and day (0003_facts.sql).
CURRENT_FACTS = "(site_id, day, run_id) IN (SELECT site_id, day, run_id FROM current_generations)"


def current_devices(where: str) -> str:
    """SQL: (site_id, day, device_id, run_id) of each device-day's current row
    among the device_days rows `where` selects: the newest run's (0005_device_facts.sql)."""
    return (
        "SELECT site_id, day, device_id, max(run_id) FROM device_days "
        f"WHERE {where} GROUP BY site_id, day, device_id"
    )


def current_device_days(where: str, figures: Sequence[str]) -> str:
    """SQL: the current device_days row of each device-day `where` selects, with
    `figures` (one pass: each figure of the newest run's row)."""
    columns = ", ".join(f"argMax({name}, run_id) AS {name}" for name in figures)
    return (
        f"SELECT site_id, day, device_id, {columns} FROM device_days "
        f"WHERE {where} GROUP BY site_id, day, device_id"
    )


def quote(value: str) -> str:
    """A ClickHouse string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Store(ABC):
    """A ClickHouse database, embedded or on a server.

    `probe` is a small table sent along with one query (chDB's `Python()` table
    function, a server's external data), written `{probe}` in the SQL text: lists
    by column, or an Arrow table (which chDB reads without a Python object per
    value: 0.7 s less CPU for the 500,000 ids of a dedup lookup).
    """

    url: str

    @abstractmethod
    def execute(self, sql: str) -> None: ...

    @abstractmethod
    def rows(self, sql: str, probe: Columns | pa.Table | None = None) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def table(self, sql: str) -> pa.Table:
        """The result as an Arrow table (dates as day numbers, int32)."""

    @abstractmethod
    def insert(self, table: str, data: pa.Table) -> None:
        """Insert an Arrow table into `table` (same column names). Dates are day numbers."""

    @abstractmethod
    def close(self) -> None: ...

    def delete(self, tables: Sequence[str], where: str, timeout_s: float = 600) -> None:
        """Delete the rows `where` selects from each of `tables`, and wait until the
        store has: a delete is a mutation, which a server applies in the background."""
        if not tables:
            return
        for table in tables:
            self.execute(f"ALTER TABLE {table} DELETE WHERE {where}")
        names = ", ".join(quote(table) for table in tables)
        deadline = time.monotonic() + timeout_s
        while self.rows(
            "SELECT count() FROM system.mutations WHERE database = currentDatabase() "
            f"AND table IN ({names}) AND is_done = 0"
        )[0][0]:
            if time.monotonic() > deadline:
                raise StoreError(f"the store did not apply its deletes within {timeout_s:.0f} s")
            time.sleep(0.05)

    def migrate(self) -> list[str]:
        """Apply the migrations of `schemas/clickhouse` not yet applied, in order."""
        self.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (name String, applied_ms UInt64) "
            "ENGINE = MergeTree ORDER BY name"
        )
        done = {row[0] for row in self.rows("SELECT name FROM schema_migrations")}
        applied = []
        for name, text in schemas.clickhouse_migrations():
            if name in done:
                continue
            for statement in split_statements(text):
                self.execute(statement)
            self.execute(
                f"INSERT INTO schema_migrations (name, applied_ms) "
                f"SELECT {quote(name)}, toUInt64(now()) * 1000"
            )
            applied.append(name)
        return applied


def split_statements(text: str) -> list[str]:
    """The statements of a migration file: `;` at a line's end closes one."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
    return [part.strip() for part in re.split(r";\s*(?:\n|$)", body) if part.strip()]


_OPEN: dict[str, Store] = {}


def open_store(url: str, migrate: bool = True) -> Store:
    """The store at `url` (`chdb:PATH` or `clickhouse://host:port/db`), migrated.

    One store per URL and process: chDB allows a single session per process, and
    the pipeline's steps running in one process share it.
    """
    store = _OPEN.get(url)
    if store is None:
        if url.startswith("chdb:"):
            from pressmeter.store.embedded import EmbeddedStore

            store = EmbeddedStore(url)
        elif url.startswith("clickhouse://"):
            from pressmeter.store.server import ServerStore

            store = ServerStore(url)
        else:
            raise StoreError(
                f"unknown store URL {url!r}: use chdb:PATH or clickhouse://host:port/db"
            )
        if migrate:
            store.migrate()
        _OPEN[url] = store
    return store


def close_stores() -> None:
    """Close every store this process opened (at the end of a command)."""
    while _OPEN:
        _, store = _OPEN.popitem()
        store.close()
