"""Fixtures of the batch pipeline tests: empty stores, embedded (chDB) and on the
local ClickHouse server, and a runner bound to one. Helpers are in support.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Runner, empty_store


@pytest.fixture(params=["chdb", pytest.param("server", marks=pytest.mark.clickhouse)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store: a fresh chDB folder, or a fresh database on the local server."""
    with empty_store(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def runner(store_url: str, tmp_path: Path) -> Runner:
    return Runner(store_url, tmp_path)
