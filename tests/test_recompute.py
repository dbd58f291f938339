"""`pipeline recompute` and `metrics provenance` (pm-metrics/1 §7) on both stores:
a bot pattern added, the chosen days recomputed from stored events change
exactly as the new list says, and the new list version is recorded."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from support import ZONE, Runner, event

from pressmeter import schemas
from pressmeter.cli import main
from pressmeter.metrics import breakdown_rows, provenance
from pressmeter.pipelines.recompute import RecomputeRequest, recompute
from pressmeter.store import open_store

HARVESTER = "Mozilla/5.0 (compatible; NewsHarvester/1.0)"
D1, D2 = dt.date(2026, 10, 5), dt.date(2026, 10, 6)


def _figures(runner: Runner) -> dict[tuple[str, str], tuple[int, ...]]:
    """(day, site) → (pageviews, visits, engaged_visits, visitors, ivt_events)."""
    return {
        key: (r["pageviews"], r["visits"], r["engaged_visits"], r["visitors"], r["ivt_events"])
        for key, r in runner.export().items()
    }


@pytest.fixture
def with_harvester_pattern(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot list as if `newsharvester` had been added to schemas/bots.txt."""
    shipped = schemas.list_entries

    def entries(name: str) -> tuple[str, ...]:
        return shipped(name) + (("newsharvester",) if name == "bots" else ())

    monkeypatch.setattr(schemas, "list_entries", entries)


def test_a_new_bot_pattern_recomputed_changes_exactly_what_it_should(
    runner: Runner, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    runner.batch(
        [
            # a.vn on D1: the harvester reads 3 pages (one engaged visit), p1 one.
            *(
                event(at=f"2026-10-05 09:0{n}", site="a.vn", device="h1", ua=HARVESTER, section="S")
                for n in range(3)
            ),
            event(at="2026-10-05 10:00", site="a.vn", device="p1", section="S"),
            # a.vn on D2: the harvester again, outside the days recomputed.
            event(at="2026-10-06 09:00", site="a.vn", device="h1", ua=HARVESTER),
            # b.vn: people only.
            event(at="2026-10-05 09:00", site="b.vn", device="q1"),
            event(at="2026-10-05 09:10", site="b.vn", device="q1"),
        ]
    )
    before = _figures(runner)
    assert before == {
        ("2026-10-05", "a.vn"): (4, 2, 1, 2, 0),
        ("2026-10-06", "a.vn"): (1, 1, 0, 1, 0),
        ("2026-10-05", "b.vn"): (2, 1, 1, 1, 0),
    }
    old_bots = schemas.list_version("bots")
    request.getfixturevalue("with_harvester_pattern")
    new_bots = schemas.list_version("bots")
    assert new_bots != old_bots

    summary = recompute(RecomputeRequest(runner.store_url, ZONE, first=D1, last=D1))
    assert (summary.read, summary.kept, summary.site_days) == (0, 0, 2)
    assert summary.ivt == {"ua": 3, "datacenter": 0, "rate": 0}
    # a.vn on D1 loses the harvester's 3 page views, its visit and its visitor;
    # D2 is as it was (not recomputed); b.vn is recomputed to the same numbers.
    assert _figures(runner) == {
        ("2026-10-05", "a.vn"): (1, 1, 0, 1, 3),
        ("2026-10-06", "a.vn"): (1, 1, 0, 1, 0),
        ("2026-10-05", "b.vn"): (2, 1, 1, 1, 0),
    }
    sections = breakdown_rows(open_store(runner.store_url), "section", site_id="a.vn")
    assert [(r.period, r.value, r.pageviews, r.visitors) for r in sections] == [
        ("2026-10-05", "S", 1, 1),
        ("2026-10-06", "(none)", 1, 1),
    ]
    store = open_store(runner.store_url)
    recomputed = provenance(store, "a.vn", D1)
    assert recomputed.generation == summary.run_id
    assert recomputed.generation_kind == "recompute"
    assert recomputed.lists["bots"] == new_bots
    assert recomputed.lists["search"] == schemas.list_version("search")
    (batch_run,) = recomputed.runs  # the events came from the first run's one file
    events, inputs = recomputed.runs[batch_run]
    assert events == 4 and len(inputs) == 1 and inputs[0][1].endswith("batch1.jsonl")
    kept = provenance(store, "a.vn", D2)
    assert kept.generation == batch_run and kept.lists["bots"] == old_bots
    assert "no figures" in provenance(store, "a.vn", dt.date(2026, 10, 7)).render()


def test_recompute_and_provenance_commands(runner: Runner, capsys: pytest.CaptureFixture) -> None:
    first = runner.batch([event(at="2026-10-05 09:00", site="a.vn")])
    store = ["--store", runner.store_url]
    assert main(["pipeline", "recompute", "--site", "a.vn", *store]) == 0
    out = capsys.readouterr().out
    assert "recomputed  1 site-days: counted 1 events" in out
    assert main(["metrics", "provenance", "--site", "a.vn", "--day", "2026-10-05", *store]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].startswith("a.vn 2026-10-05: figures of run ")
    assert "(recompute, pm-metrics/1)" in shown[0]
    assert shown[1] == "  lists: " + ", ".join(
        f"{name} {version}" for name, version in schemas.list_versions().items()
    )
    assert shown[3] == f"    run {first.run_id}: 1 events of the day"
    bad = ["pipeline", "recompute", "--from", "2026-10-06", "--to", "2026-10-05", *store]
    assert main(bad) == 2
    assert capsys.readouterr().err.strip() == (
        "pressmeter: error: --from 2026-10-06 is after --to 2026-10-05"
    )
