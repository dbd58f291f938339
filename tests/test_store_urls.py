"""Store URLs as an operator types them, wrong ones included: a database name
never reaches SQL unless it is a plain identifier, and every problem is one line."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest
from support import clickhouse_url

from pressmeter.cli import main
from pressmeter.store import close_stores, open_store


def _server(path: str) -> str:
    """The local server's URL with another database path."""
    parts = urlparse(clickhouse_url())
    return f"clickhouse://{parts.hostname}:{parts.port}/{path}"


def _databases() -> set[str]:
    store = open_store(clickhouse_url())
    names = {row[0] for row in store.rows("SELECT name FROM system.databases")}
    close_stores()
    return names


def _error_of(capsys: pytest.CaptureFixture, store: str) -> str:
    assert main(["metrics", "export", "--store", store]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err


@pytest.mark.clickhouse
@pytest.mark.parametrize(
    "database",
    [
        "z ENGINE = Memory",
        "z%20ENGINE%20=%20Memory",
        "pm; DROP DATABASE default",
        "pm`x",
        "9lives",
        "a/b",
    ],
)
def test_a_database_name_that_is_not_an_identifier_is_refused_before_any_sql(
    capsys: pytest.CaptureFixture, database: str
) -> None:
    before = _databases()
    err = _error_of(capsys, _server(database))
    assert "is not a plain identifier" in err
    assert _databases() == before


@pytest.mark.clickhouse
def test_a_port_that_is_not_a_number_is_named(capsys: pytest.CaptureFixture) -> None:
    err = _error_of(capsys, "clickhouse://127.0.0.1:90x0/pm")
    assert "the port is not a number" in err


@pytest.mark.clickhouse
def test_a_server_that_does_not_answer_is_one_line(capsys: pytest.CaptureFixture) -> None:
    err = _error_of(capsys, "clickhouse://127.0.0.1:1/pm")
    assert err.startswith("pressmeter: error: cannot reach ClickHouse at 127.0.0.1:1:")


@pytest.mark.clickhouse
def test_a_server_error_is_its_first_line_without_the_stack_trace(
    capsys: pytest.CaptureFixture,
) -> None:
    # The native port of a real server, but a user it does not know.
    parts = urlparse(clickhouse_url())
    err = _error_of(capsys, f"clickhouse://nobody:x@{parts.hostname}:{parts.port}/pm")
    assert "cannot reach ClickHouse" in err
    assert "Stack trace" not in err and "DB::Exception" in err
