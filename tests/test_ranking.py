"""docs/standard.md §5 additions on both stores: the IVT rate beside each outlet and its
flag, the channel ranking of tv and radio, and exact visitors and reach."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from support import Runner, event

from pressmeter.cli import main
from pressmeter.config import ConfigError, load_settings
from pressmeter.ranking import Outlet, channel_ranking, monthly_ranking
from pressmeter.store import open_store

EXAMPLE = Path(__file__).resolve().parent / "data/pm-metrics-1/breakdowns"
BOT = "Mozilla/5.0 (compatible; Googlebot/2.1)"


def outlets(**categories: str) -> dict[str, Outlet]:
    return {site: Outlet(site, site.split(".")[0].upper(), c) for site, c in categories.items()}


def test_ivt_rate_beside_each_outlet_flagged_above_the_threshold(runner: Runner) -> None:
    # a.vn: 9 counted, 1 IVT: exactly 10 %, not above. b.vn: 8 and 2: 20 %.
    runner.batch(
        [
            event(at="2026-10-05 09:00", site=site, device=f"{site}-{n}", **bot)
            for site, counted, ivt in (("a.vn", 9, 1), ("b.vn", 8, 2))
            for n, bot in enumerate([{}] * counted + [{"ua": BOT}] * ivt)
        ]
    )
    store = open_store(runner.store_url)
    table = monthly_ranking(store, outlets(**{"a.vn": "news", "b.vn": "news"}), "2026-10")
    got = [(e.rank, e.outlet.site_id, e.metrics.ivt_rate, e.flagged) for e in table["news"]]
    assert got == [
        (1, "a.vn", Fraction(1, 10), False),
        (2, "b.vn", Fraction(2, 10), True),
    ]
    relaxed = monthly_ranking(store, outlets(**{"b.vn": "news"}), "2026-10", Fraction(1, 4))
    assert [e.flagged for e in relaxed["news"]] == [False]


def test_the_threshold_is_a_setting(tmp_path: Path) -> None:
    assert load_settings(None, env={}).ivt_threshold_fraction() == Fraction(1, 10)
    env = {"PM_IVT_THRESHOLD": "0.25"}
    assert load_settings(None, env=env).ivt_threshold_fraction() == Fraction(1, 4)
    config = tmp_path / "pm.toml"
    config.write_text('ivt_threshold = "5%"\n')
    assert load_settings(str(config), env={}).ivt_threshold_fraction() == Fraction(1, 20)
    with pytest.raises(ConfigError, match="ivt_threshold 'lots'"):
        load_settings(None, env={"PM_IVT_THRESHOLD": "lots"}).ivt_threshold_fraction()


def test_channels_of_tv_ranked_by_ama_with_share_and_reach(runner: Runner) -> None:
    runner.files([EXAMPLE / "events.jsonl"])
    registry = outlets(**{"tv1.vn": "tv", "news1.vn": "news"})
    ranking = channel_ranking(open_store(runner.store_url), registry, "2026-11")
    got = [
        (e.rank, e.metrics.value, e.metrics.play_ms, e.metrics.media_reach, e.share)
        for e in ranking["tv"]
    ]
    # README: tv1-phim 159999 ms (61.5 %), tv1-news 100000 ms (38.5 %), (none) not ranked.
    assert got == [
        (1, "tv1-phim", 159_999, 0, Fraction(159_999, 259_999)),
        (2, "tv1-news", 100_000, 1, Fraction(100_000, 259_999)),
    ]
    assert ranking["radio"] == []


def test_visitors_are_exact_where_a_sketch_is_not(runner: Runner) -> None:
    # uniqCombined of these 6,000 ids says 5,996 (chDB): the month's sketch would miss.
    devices = 6_000
    runner.batch(
        [
            event(at=f"2026-10-{1 + n % 28:02d} 09:00", site="big.vn", device=f"d{n}")
            for n in range(devices)
        ]
    )
    table = monthly_ranking(open_store(runner.store_url), outlets(**{"big.vn": "news"}), "2026-10")
    assert table["news"][0].metrics.visitors == devices


def test_ranking_command_shows_the_flag_and_channels(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    runner.files([EXAMPLE / "events.jsonl"])
    registry = tmp_path / "outlets.json"
    registry.write_text(
        '{"schema": "iglu:vn.pressmeter/outlet_registry/jsonschema/1-0-0", "outlets": ['
        '{"site_id": "news1.vn", "name": "News One", "category": "news"},'
        '{"site_id": "tv1.vn", "name": "TV One", "category": "tv"}]}'
    )
    base = ["ranking", "--month", "2026-11", "--outlets", str(registry)]
    base += ["--store", runner.store_url]
    # news1.vn (README): 14 events, x1 IVT: 1 / 14 = 7.1 %, above 5 %, below 10 %.
    assert main([*base, "--ivt-threshold", "5%"]) == 0
    out = capsys.readouterr().out
    news = next(line for line in out.splitlines() if "News One" in line)
    assert news.split()[-5:] == ["7.1%", "FLAGGED:", "IVT", "above", "threshold"]
    assert main(base) == 0
    assert "FLAGGED" not in capsys.readouterr().out
    assert main([*base, "--channels"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if "TV One" in line]
    assert [r[0] for r in rows] == ["1", "2"]
    assert [r[3] for r in rows] == ["tv1-phim", "tv1-news"]
    assert [r[-1] for r in rows] == ["61.5%", "38.5%"]
