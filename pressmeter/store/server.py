"""A ClickHouse server reached with clickhouse-driver (native protocol)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse

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


# A database name as ClickHouse reads it unquoted: it reaches DDL, so nothing else passes.
_DATABASE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,199}")


@dataclass(frozen=True)
class ServerAddress:
    """Where a `clickhouse://user:password@host:port/database` URL points."""

    host: str
    port: int
    user: str
    password: str
    database: str

    @classmethod
    def parse(cls, url: str) -> ServerAddress:
        """The address, or a StoreError naming what is wrong with the URL."""
        parts = urlparse(url)
        try:
            port = parts.port or 9000
        except ValueError:
            raise StoreError(f"store URL {url!r}: the port is not a number 1-65535") from None
        database = unquote(parts.path.strip("/")) or "default"
        if not _DATABASE.fullmatch(database):
            raise StoreError(
                f"store URL {url!r}: database name {database!r} is not a plain identifier "
                "(letters, digits and _, not starting with a digit)"
            )
        if parts.query or parts.fragment or parts.params:
            raise StoreError(f"store URL {url!r}: a query string or fragment is not understood")
        return cls(
            parts.hostname or "127.0.0.1",
            port,
            unquote(parts.username or "default"),
            unquote(parts.password or ""),
            database,
        )


def _one_line(exc: BaseException) -> str:
    """A server error as one line: its code and message, without the stack trace
    the server appends (clickhouse-driver spreads them over several lines)."""
    message = str(exc).split("Stack trace", 1)[0]
    return " ".join(message.split()) or type(exc).__name__


class ServerStore(Store):
    """One native-protocol connection per process, shared by the pipeline's steps.

    A connection carries one query at a time, so queries from the threads of a
    multi-threaded runner take turns (a lock) rather than interleave.
    """

    def __init__(self, url: str) -> None:
        from clickhouse_driver import Client, errors

        self.url = url
        address = ServerAddress.parse(url)
        self.database = address.database
        self._errors = errors
        options = dict(
            host=address.host,
            port=address.port,
            user=address.user,
            password=address.password,
            connect_timeout=5,
            send_receive_timeout=600,
        )
        self._column_types: dict[str, dict[str, str]] = {}
        self._lock = threading.Lock()
        where = f"{address.host}:{address.port}"
        try:
            self._client = Client(**options)
            self.version = self._client.execute("SELECT version()")[0][0]
        except (errors.Error, OSError, EOFError) as exc:
            raise StoreError(f"cannot reach ClickHouse at {where}: {_one_line(exc)}") from exc
        try:
            self._client.execute(f"CREATE DATABASE IF NOT EXISTS `{self.database}`")
            self._client = Client(database=self.database, **options)
        except (errors.Error, OSError, EOFError) as exc:
            raise StoreError(
                f"ClickHouse at {where} cannot open database {self.database}: {_one_line(exc)}"
            ) from exc

    def _run(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        try:
            with self._lock:
                return self._client.execute(sql, *args, **kwargs)
        except (self._errors.Error, OSError, EOFError) as exc:
            raise StoreError(f"ClickHouse server refused: {_one_line(exc)}") from exc

    def execute(self, sql: str) -> None:
        self._run(sql)

    def rows(self, sql: str, probe: Columns | pa.Table | None = None) -> list[tuple[Any, ...]]:
        if probe is None:
            return list(self._run(sql))
        if isinstance(probe, pa.Table):
            probe = probe.to_pydict()
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
