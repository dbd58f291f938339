"""docs/standard.md §6: the worked example's 19 lines give exactly the expected CSVs,
on the embedded store and on the oldest ClickHouse server we support."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pressmeter.metrics import metric_rows, write_csv
from pressmeter.store import open_store

EXAMPLE = Path(__file__).resolve().parents[2] / "shared/examples/pm-metrics-1"
if not EXAMPLE.is_dir():  # a checkout without shared/ beside it: the copy in tests/
    EXAMPLE = Path(__file__).resolve().parent / "data/pm-metrics-1"


@pytest.mark.parametrize("grain", ["day", "month"])
def test_worked_example_exports_exactly_the_expected_csv(runner, grain: str) -> None:
    summary = runner.files([EXAMPLE / "events.jsonl"])
    assert summary.read == 19
    assert summary.rejected == {"missing_field": 1, "not_json": 1, "wrong_type": 1}
    assert summary.duplicates == 1
    assert summary.kept == 15
    out = io.StringIO()
    write_csv(metric_rows(open_store(runner.store_url), grain), out)
    assert out.getvalue() == (EXAMPLE / f"expected-{grain}.csv").read_text()
