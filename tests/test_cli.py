"""The `pressmeter` command as an operator uses it: help, settings, export filters,
the monthly ranking, and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import event, write_lines

from pressmeter.cli import main
from pressmeter.config import load_settings
from pressmeter.errors import ConfigError

PRESSMETER = [sys.executable, "-m", "pressmeter.cli"]
HEADER = (
    "period,site_id,pageviews,visits,engaged_visits,visitors,engaged_ms,media_starts,"
    "media_completes,play_ms,media_reach,ama,ivt_events,duplicate_events"
)


def pressmeter(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*PRESSMETER, *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([], ["pipeline", "metrics", "ranking", "rejects", "simulate"]),
        (
            ["pipeline", "batch"],
            ["--input", "--kafka", "--topic", "--rejected-topic", "--group", "--store"],
        ),
        (["rejects"], ["--from", "--to", "--site", "--format", "--store"]),
        (["metrics", "export"], ["--grain", "--from", "--to", "--site", "--out"]),
        (["ranking"], ["--month", "--outlets", "--top"]),
        (["simulate"], ["--outlets", "--days", "--start", "--out"]),
    ],
)
def test_every_command_explains_itself(command: list[str], expected: list[str]) -> None:
    done = pressmeter(*command, "--help")
    assert done.returncode == 0
    for word in expected:
        assert word in done.stdout


def _two_sites_two_days(tmp_path: Path) -> Path:
    return write_lines(
        tmp_path / "in.jsonl",
        [
            event(at="2026-10-30 10:00", site="news1.vn", device="a"),
            event(at="2026-10-31 10:00", site="news1.vn", device="a"),
            event(at="2026-10-31 11:00", site="news1.vn", device="b"),
            event(at="2026-10-31 12:00", site="tv1.vn", device="c"),
            event(at="2026-11-01 12:00", site="tv1.vn", device="c"),
        ],
    )


def test_export_filters_by_site_and_dates_and_writes_a_file(tmp_path: Path) -> None:
    store = f"chdb:{tmp_path / 'store'}"
    done = pressmeter(
        "pipeline", "batch", "--input", str(_two_sites_two_days(tmp_path)), "--store", store
    )
    assert done.returncode == 0, done.stderr
    out = tmp_path / "day.csv"
    done = pressmeter(
        "metrics",
        "export",
        "--store",
        store,
        "--site",
        "news1.vn",
        "--from",
        "2026-10-31",
        "--to",
        "2026-10-31",
        "--out",
        str(out),
    )
    assert done.returncode == 0, done.stderr
    assert out.read_text().splitlines() == [
        HEADER,
        "2026-10-31,news1.vn,2,2,0,2,0,0,0,0,0,0.0000,0,0",
    ]
    month = pressmeter(
        "metrics", "export", "--store", store, "--grain", "month", "--from", "2026-10"
    )
    assert month.stdout.splitlines() == [
        HEADER,
        "2026-10,news1.vn,3,3,0,2,0,0,0,0,0,0.0000,0,0",
        "2026-10,tv1.vn,1,1,0,1,0,0,0,0,0,0.0000,0,0",
        "2026-11,tv1.vn,1,1,0,1,0,0,0,0,0,0.0000,0,0",
    ]


def test_store_setting_comes_from_the_environment(tmp_path: Path) -> None:
    import os

    env = {**os.environ, "PM_STORE": f"chdb:{tmp_path / 'from-env'}"}
    done = pressmeter("pipeline", "batch", "--input", str(_two_sites_two_days(tmp_path)), env=env)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "from-env").is_dir()
    assert "read        5 records" in done.stdout


def test_settings_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "pm.toml"
    config.write_text('store = "clickhouse://db:9000/pm"\nzone = "Asia/Bangkok"\n')
    settings = load_settings(str(config), env={"PM_ZONE": "UTC"})
    assert settings.store == "clickhouse://db:9000/pm"
    assert settings.zone == "UTC"
    assert settings.topic == "pm.events.v1"


def test_a_wrong_settings_file_is_named(tmp_path: Path) -> None:
    config = tmp_path / "pm.toml"
    config.write_text('stor = "x"\n')
    with pytest.raises(ConfigError, match=r"pm\.toml: unknown setting\(s\) stor"):
        load_settings(str(config), env={})
    done = pressmeter("--config", str(tmp_path / "missing.toml"), "metrics", "export")
    assert done.returncode == 2
    assert done.stderr.strip().startswith("pressmeter: error: cannot read config file")
    assert len(done.stderr.strip().splitlines()) == 1


def test_ranking_ties_share_a_rank(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    events = [
        event(at="2026-10-05 09:00", site=site, device=f"{site}-{n}")
        for site, devices in (("a.vn", 3), ("b.vn", 2), ("c.vn", 2), ("d.vn", 1))
        for n in range(devices)
    ]
    registry = tmp_path / "outlets.json"
    registry.write_text(
        '{"schema": "iglu:vn.pressmeter/outlet_registry/jsonschema/1-0-0", "outlets": ['
        '{"site_id": "a.vn", "name": "A", "category": "news"},'
        '{"site_id": "b.vn", "name": "B", "category": "news"},'
        '{"site_id": "c.vn", "name": "C", "category": "news"},'
        '{"site_id": "d.vn", "name": "D", "category": "news"}]}'
    )
    store = f"chdb:{tmp_path / 'store'}"
    assert (
        main(
            [
                "pipeline",
                "batch",
                "--input",
                str(write_lines(tmp_path / "r.jsonl", events)),
                "--store",
                store,
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(["ranking", "--month", "2026-10", "--outlets", str(registry), "--store", store]) == 0
    )
    table = [
        line.split()[:3]
        for line in capsys.readouterr().out.splitlines()
        if line.strip()[:1].isdigit()
    ]
    assert table == [["1", "A", "3"], ["2", "B", "2"], ["2", "C", "2"], ["4", "D", "1"]]


def test_a_bad_registry_is_refused_with_the_place(tmp_path: Path) -> None:
    registry = tmp_path / "outlets.json"
    registry.write_text(
        '{"schema": "iglu:vn.pressmeter/outlet_registry/jsonschema/1-0-0", "outlets": ['
        '{"site_id": "a.vn", "name": "A", "category": "sports"}]}'
    )
    done = pressmeter(
        "ranking",
        "--month",
        "2026-10",
        "--outlets",
        str(registry),
        "--store",
        f"chdb:{tmp_path / 'store'}",
    )
    assert done.returncode == 2
    assert "outlets/0/category" in done.stderr
    assert "'sports' is not one of" in done.stderr
