"""A ClickHouse server reached with clickhouse-driver (native protocol)."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa

from pressmeter.calendar import date_to_day, day_to_date
from pressmeter.store.base import Columns, Store, StoreError

_TYPES = {str: "String", int: "Int64", float: "Float64"}
# Result columns whose Arrow type must not be guessed (UInt64 beyond Int64, say).
_ARROW_TYPES = {
    f"{sign}Int{bits}": getattr(pa, f"{sign.lower()}int{bits}")()
    for sign in ("", "U")
    for bits in (8, 16, 32, 64)
}


class ServerStore(Store):
    """One native-protocol connection per process, shared by the pipeline's steps.

    A connection carries one query at a time, so queries from the threads of a
    multi-threaded runner take turns (a lock) rather than interleave.
    """

    def __init__(self, url: str) -> None:
        from clickhouse_driver import Client, errors

        self.url = url
        parts = urlparse(url)
        self.database = parts.path.strip("/") or "default"
        self._errors = errors
        options = dict(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 9000,
            user=parts.username or "default",
            password=parts.password or "",
            connect_timeout=5,
            send_receive_timeout=600,
        )
        self._column_types: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        try:
            Client(**options).execute(f"CREATE DATABASE IF NOT EXISTS {self.database}")
            self._client = Client(database=self.database, **options)
            self.version = self._client.execute("SELECT version()")[0][0]
        except (errors.Error, OSError, EOFError) as exc:
            raise StoreError(
                f"cannot reach ClickHouse at {parts.hostname}:{parts.port}: {exc}"
            ) from exc

    def _run(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        try:
            with self._lock:
                return self._client.execute(sql, *args, **kwargs)
        except (self._errors.Error, OSError, EOFError) as exc:
            raise StoreError(f"ClickHouse server refused: {exc}") from exc

    def execute(self, sql: str) -> None:
        self._run(sql)

    def rows(self, sql: str, probe: Columns | None = None) -> list[tuple[Any, ...]]:
        if probe is None:
            return list(self._run(sql))
        names = list(probe)
        structure = [
            (name, _TYPES[type(probe[name][0])] if probe[name] else "String") for name in names
        ]
        data = [dict(zip(names, row)) for row in zip(*(probe[name] for name in names))]
        external = [{"name": "probe", "structure": structure, "data": data}]
        return list(self._run(sql.replace("{probe}", "probe"), external_tables=external))

    def table(self, sql: str) -> pa.Table:
        values, types = self._run(sql, columnar=True, with_column_types=True)
        columns = {}
        for (name, kind), column in zip(types, values or [[] for _ in types]):
            if kind == "Date":
                columns[name] = pa.array([date_to_day(d) for d in column], pa.int32())
            else:
                columns[name] = pa.array(list(column), _ARROW_TYPES.get(kind))
        return pa.table(columns)

    def _types(self, table: str) -> dict[str, str]:
        if table not in self._column_types:
            described = self._run(f"DESCRIBE TABLE {table}")
            self._column_types[table] = {row[0]: row[1] for row in described}
        return self._column_types[table]

    def insert(self, table: str, data: pa.Table) -> None:
        types = self._types(table)
        columns = []
        for name in data.column_names:
            values = data[name].to_pylist()
            if types[name] == "Date":
                dates = {d: day_to_date(d) for d in set(values)}
                values = [dates[d] for d in values]
            columns.append(values)
        names = ", ".join(data.column_names)
        self._run(f"INSERT INTO {table} ({names}) VALUES", columns, columnar=True)

    def close(self) -> None:
        self._client.disconnect()
