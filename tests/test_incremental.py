"""Incremental facts (issue 11) and §8's additivity, on a simulated month, on
both stores: N small runs give the same exports as one big run, and over the
values of every dimension the additive figures sum to the site's."""

from __future__ import annotations

import io
import logging
import random
import subprocess
from pathlib import Path

import pytest
from support import PRESSMETER, Runner, event, fresh_store, write_lines

from pressmeter.metrics import (
    BREAKDOWN_COLUMNS,
    DIMENSIONS,
    breakdown_rows,
    metric_rows,
    write_csv,
)
from pressmeter.pipelines import generations, incremental
from pressmeter.store import close_stores, open_store
from pressmeter.store.tables import ADDITIVE_FIGURES

RUNS = 5


def _dimension_events() -> list[dict]:
    """Events with every §8 field, for dimensions the simulator may not emit."""
    pick = random.Random(9)
    events = []
    for n in range(300):
        hour, minute = pick.randint(0, 23), pick.choice((5, 59))
        at = f"2026-10-{pick.randint(1, 30):02d} {hour:02d}:{minute:02d}"
        common = dict(
            at=at,
            site=pick.choice(("dims1.vn", "dims2.vn")),
            device=f"dim-{pick.randint(1, 40)}",
            section=pick.choice(("Thời sự", "Thể thao", "", "(none)")),
            content_id=f"c{pick.randint(1, 6)}",
            channel_id=pick.choice(("ch1", "ch2", "")),
            stream=pick.choice(("live", "vod")),
            province=pick.choice(("VN-HN", "VN-SG")),
            device_type=pick.choice(("mobile", "desktop", "tv")),
        )
        if n % 3:
            events.append(event(referrer=pick.choice(("", "https://t.co/x")), **common))
        else:
            events.append(event("media", action="heartbeat", played_ms=40_000, **common))
    return events


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    """A simulated October (12 outlets) and the dimension events, as lines in time order."""
    folder = tmp_path_factory.mktemp("month")
    out = folder / "month.jsonl"
    subprocess.run(
        [
            str(PRESSMETER),
            *("simulate", "--outlets", "12", "--days", "30"),
            *("--events-per-day", "700", "--out", str(out)),
        ],
        check=True,
        capture_output=True,
    )
    extra = write_lines(folder / "dims.jsonl", _dimension_events())
    lines = out.read_bytes().splitlines() + extra.read_bytes().splitlines()
    return lines


def exports(store_url: str) -> dict[str, str]:
    """Every export of the store: §4 and §8 by each dimension, by day and by month."""
    store = open_store(store_url)
    texts = {}
    for grain in ("day", "month"):
        out = io.StringIO()
        write_csv(metric_rows(store, grain), out)
        texts[grain] = out.getvalue()
        for dimension in DIMENSIONS:
            out = io.StringIO()
            write_csv(breakdown_rows(store, dimension, grain), out, BREAKDOWN_COLUMNS)
            texts[f"{grain} by {dimension}"] = out.getvalue()
    return texts


def test_small_runs_give_the_numbers_of_one_big_run(
    runner: Runner,
    month: list[bytes],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The lines dealt into RUNS files in turn: every run touches every day and
    # most devices again, the hard case for a run that recomputes only its part.
    # The small runs compute their facts in partitions of at most 1,000 events,
    # one facts pipeline each, and sum their site-days a few days at a time; the
    # big run does both at once.
    monkeypatch.setattr(incremental, "PARTITION_EVENTS", 1_000)
    monkeypatch.setattr(generations, "FINISH_DEVICE_DAYS", 200)
    caplog.set_level(logging.INFO, logger="pressmeter.pipelines")
    for index in range(RUNS):
        part = tmp_path / f"part{index}.jsonl"
        part.write_bytes(b"\n".join(month[index::RUNS]) + b"\n")
        runner.files([part])
    monkeypatch.undo()
    groups = [m for m in caplog.messages if "summing the site-days of group" in m]
    assert len(groups) > 2 * RUNS
    facts_steps = [m for m in caplog.messages if ": facts of partition " in m]
    assert len(facts_steps) > 2 * RUNS
    small = exports(runner.store_url)
    close_stores()  # chDB: one store per process at a time
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(b"\n".join(month) + b"\n")
    with fresh_store(runner.store_url, tmp_path) as reference:
        Runner(reference, tmp_path).files([whole])
        expected = exports(reference)
    assert small["day by source"].count("\n") > 300
    assert small == expected


def test_each_dimension_adds_up_to_the_site(runner: Runner, month: list[bytes], tmp_path: Path):
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(b"\n".join(month) + b"\n")
    runner.files([whole])
    store = open_store(runner.store_url)
    for grain in ("day", "month"):
        sites = {
            (r.period, r.site_id): {n: getattr(r, n) for n in ADDITIVE_FIGURES}
            for r in metric_rows(store, grain)
            if r.pageviews or r.play_ms or r.visits
        }
        assert len(sites) > 12
        for dimension in DIMENSIONS:
            sums: dict[tuple[str, str], dict[str, int]] = {}
            for row in breakdown_rows(store, dimension, grain):
                total = sums.setdefault(
                    (row.period, row.site_id), dict.fromkeys(ADDITIVE_FIGURES, 0)
                )
                for name in ADDITIVE_FIGURES:
                    total[name] += getattr(row, name)
            assert sums == sites, (grain, dimension)
    by_section = {r.value for r in breakdown_rows(store, "section", "month", site_id="dims1.vn")}
    assert by_section == {"(none)", "Thời sự", "Thể thao"}


def test_an_empty_breakdown_row_never_exists(runner: Runner) -> None:
    # Only IVT: the site has a row (ivt_events) but no value has a counted event.
    runner.batch([event(at="2026-10-05 09:00", ua="Googlebot/2.1")])
    assert [(r.period, r.site_id) for r in metric_rows(open_store(runner.store_url))] == [
        ("2026-10-05", "news1.vn")
    ]
    assert breakdown_rows(open_store(runner.store_url), "section") == []


def test_a_device_that_leaves_a_sketch_is_counted_out(runner: Runner) -> None:
    """Run 2 brings earlier events of two of run 1's 33 devices: dev-a's visit now
    starts direct instead of from a search engine, and dev-b passes SIVT-RATE's
    limit, so it is no longer a visitor. Summed by difference (2 of 33 devices
    replaced), the sketches they left are rebuilt, not merged; run 3's new device
    is merged in (pipelines/generations.py)."""
    search = "https://www.google.com/search?q=x"
    first = [
        event(at="2026-10-05 09:10", device="dev-a", referrer=search),
        event(at="2026-10-05 09:00:30", device="dev-b"),
        event(at="2026-10-05 11:00", device="dev-c", referrer=search),
        *(event(at="2026-10-05 12:00", device=f"dev-x{n}") for n in range(30)),
    ]
    runner.batch(first)
    assert runner.metric("2026-10-05", "visitors") == 33
    late = [event(at="2026-10-05 09:00", device="dev-a")]
    # 31 more page views of dev-b in the UTC minute of its first one: SIVT-RATE.
    minute = first[1]["ts"] - first[1]["ts"] % 60_000
    late += [event(at=minute + n, device="dev-b") for n in range(31)]
    runner.batch(late)
    day = runner.export()[("2026-10-05", "news1.vn")]
    assert (day["visitors"], day["pageviews"], day["ivt_events"]) == (32, 33, 32)
    store = open_store(runner.store_url)
    sources = {r.value: (r.visitors, r.visits) for r in breakdown_rows(store, "source")}
    assert sources == {"direct": (31, 31), "search": (1, 1)}
    rebuilt = store.rows("SELECT dimension, value FROM rebuilt_sketches ORDER BY dimension, value")
    # dev-b left the site-day's sketch and, no longer counted, every value it had.
    others = ("channel", "content", "device_type", "province", "section", "stream")
    assert rebuilt == sorted(
        [("", ""), ("source", "direct"), ("source", "search"), *((d, "(none)") for d in others)]
    )
    assert [(r.value, r.visitors) for r in breakdown_rows(store, "section")] == [("(none)", 32)]
    runner.batch([event(at="2026-10-05 13:00", device="dev-d", referrer=search)])
    assert runner.metric("2026-10-05", "visitors") == 33
    sources = {r.value: (r.visitors, r.visits) for r in breakdown_rows(store, "source")}
    assert sources == {"direct": (31, 31), "search": (2, 2)}
