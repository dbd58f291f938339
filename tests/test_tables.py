"""The table descriptions of pressmeter/store/tables.py against the tables the
migrations create, on both stores: a column added to one and not the other fails."""

from __future__ import annotations

from pressmeter.store import open_store
from pressmeter.store.tables import RUN_TABLES, RUNS, TABLES


def test_each_description_names_the_stored_columns_in_order(store_url: str) -> None:
    store = open_store(store_url)
    for table in TABLES.values():
        stored = tuple(row[0] for row in store.rows(f"DESCRIBE TABLE {table.name}"))
        assert stored == table.columns, table.name


def test_run_tables_are_those_with_a_run_id_and_sources_go_last() -> None:
    assert RUNS not in RUN_TABLES
    assert RUN_TABLES[-1].name == "run_sources"
    assert {t.name for t in RUN_TABLES} == {
        t.name for t in TABLES.values() if "run_id" in t.columns and t is not RUNS
    }
