"""`pressmeter simulate`: the synthetic traffic must be valid, deterministic, counted
honestly in its summary, and shaped like a press market (Zipf, daily curve)."""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
from collections import Counter, defaultdict
from pathlib import Path
from random import Random

import orjson
import pytest
from jsonschema import Draft202012Validator

from pressmeter.collectors.simulate import (
    SimulationSummary,
    add_arguments,
    build_outlets,
    default_registry_path,
    run,
    simulate,
)

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
EVENT_SCHEMA = SCHEMAS / "vn.pressmeter/event/jsonschema/1-0-0.json"
REGISTRY_SCHEMA = SCHEMAS / "vn.pressmeter/outlet_registry/jsonschema/1-0-0.json"
HOUR_MS = 3_600_000
LOCAL_OFFSET_MS = 7 * HOUR_MS
START = dt.date(2026, 10, 1)
OUTLETS, DAYS, PER_DAY = 12, 3, 4000


def _bot_patterns() -> list[str]:
    lines = (SCHEMAS / "bots.txt").read_text(encoding="utf-8").splitlines()
    return [p.strip().lower() for p in lines if p.strip() and not p.startswith("#")]


def _read_lines(path: Path) -> list[bytes]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        return fh.read().splitlines()


class Parsed:
    """The lines of a run split into well-formed events and rejected lines."""

    def __init__(self, lines: list[bytes]) -> None:
        schema = json.loads(EVENT_SCHEMA.read_text(encoding="utf-8"))
        window = schema["x-pressmeter-ts-window"]
        validator = Draft202012Validator(schema)
        self.events: list[dict] = []
        self.rejected: list[bytes] = []
        for line in lines:
            try:
                event = orjson.loads(line)
            except orjson.JSONDecodeError:
                self.rejected.append(line)
                continue
            ok = validator.is_valid(event) and (
                event["received_at"] - window["before_ms"]
                <= event["ts"]
                <= event["received_at"] + window["after_ms"]
            )
            (self.events if ok else self.rejected).append(event if ok else line)


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> tuple[SimulationSummary, Parsed, dict]:
    """One small plain-text run shared by the read-only tests."""
    folder = tmp_path_factory.mktemp("sim")
    summary = simulate(
        OUTLETS,
        DAYS,
        START,
        folder / "ev.jsonl",
        folder / "ev.outlets.json",
        seed=7,
        events_per_day=PER_DAY,
    )
    registry = json.loads((folder / "ev.outlets.json").read_text(encoding="utf-8"))
    return summary, Parsed(_read_lines(folder / "ev.jsonl")), registry


def test_same_arguments_give_identical_bytes_and_gzip_is_readable(tmp_path: Path) -> None:
    runs = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        out = tmp_path / name / "events.jsonl.gz"
        summary = simulate(
            5, 1, START, out, default_registry_path(out), seed=seed, events_per_day=1500
        )
        runs.append((out.read_bytes(), default_registry_path(out).read_bytes(), summary))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1] == runs[1][1]
    assert runs[0][0] != runs[2][0]  # the seed matters
    out = tmp_path / "a" / "events.jsonl.gz"
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    assert len(_read_lines(out)) == runs[0][2].events_written
    assert not list(tmp_path.glob("*/*.part"))


def test_every_line_but_the_malformed_ones_is_a_valid_event(month) -> None:
    summary, parsed, _ = month
    assert summary.malformed >= 1
    assert len(parsed.rejected) == summary.malformed
    assert sum(summary.malformed_by_kind.values()) == summary.malformed
    assert len(parsed.events) + len(parsed.rejected) == summary.events_written


def test_registry_is_valid_with_the_stated_categories(month) -> None:
    summary, parsed, registry = month
    Draft202012Validator(json.loads(REGISTRY_SCHEMA.read_text(encoding="utf-8"))).validate(registry)
    assert registry["schema"] == "iglu:vn.pressmeter/outlet_registry/jsonschema/1-0-0"
    categories = Counter(o["category"] for o in registry["outlets"])
    # 12 outlets: 55 % news, 15 % each of the rest, rounded by largest remainder
    assert categories == {"news": 6, "tv": 2, "radio": 2, "magazine": 2}
    assert summary.outlets_by_category == categories
    assert registry["outlets"][0]["category"] == "news"
    sites = [o["site_id"] for o in registry["outlets"]]
    assert len(set(sites)) == OUTLETS
    assert {e["site_id"] for e in parsed.events} == set(sites)


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1, {"news": 1, "tv": 0, "radio": 0, "magazine": 0}),
        (4, {"news": 1, "tv": 1, "radio": 1, "magazine": 1}),
        (50, {"news": 28, "tv": 8, "radio": 7, "magazine": 7}),
    ],
)
def test_category_mix(n: int, expected: dict[str, int]) -> None:
    outlets = build_outlets(n, Random(1))
    assert Counter(o.category for o in outlets) == {k: v for k, v in expected.items() if v}
    assert abs(sum(o.share for o in outlets) - 1.0) < 1e-9
    assert outlets[0].site_id == "tinnhanh1.vn"


def test_summary_matches_a_recount_of_the_file(month) -> None:
    summary, parsed, _ = month
    events = parsed.events
    patterns = _bot_patterns()
    seen: set[tuple[str, str]] = set()
    duplicates = 0
    for e in events:
        key = (e["site_id"], e["event_id"])
        duplicates += key in seen
        seen.add(key)
    assert dict(Counter(e["type"] for e in events)) == {
        k: v for k, v in summary.by_type.items() if v
    }
    assert summary.bots == sum(
        1 for e in events if e["ua"] and any(p in e["ua"].lower() for p in patterns)
    )
    assert summary.empty_ua == sum(1 for e in events if e["ua"] == "")
    assert summary.datacenter == sum(1 for e in events if e["ip_class"] == "datacenter")
    assert summary.duplicates == duplicates
    assert summary.late == sum(1 for e in events if e["received_at"] - e["ts"] >= HOUR_MS)
    for count in (
        summary.bots,
        summary.empty_ua,
        summary.datacenter,
        summary.duplicates,
        summary.late,
    ):
        assert count > 0


def test_rate_bursts_are_over_30_page_views_in_a_utc_minute(month) -> None:
    summary, parsed, _ = month
    per_minute: dict[tuple[str, str, int], set[str]] = defaultdict(set)
    for e in parsed.events:
        if e["type"] == "page_view":
            per_minute[(e["site_id"], e["device_id"], e["ts"] // 60_000)].add(e["event_id"])
    bursts = {(site, device) for (site, device, _), ids in per_minute.items() if len(ids) > 30}
    assert len(bursts) == summary.rate_burst_devices >= 1  # day 0 of 3 has one or two
    assert summary.rate_burst_events == sum(
        1 for e in parsed.events if (e["site_id"], e["device_id"]) in bursts
    )


def test_total_is_close_to_days_times_events_per_day(month) -> None:
    summary, _, _ = month
    assert 0.9 * DAYS * PER_DAY <= summary.events_written <= 1.1 * DAYS * PER_DAY


def test_zipf_popularity(month) -> None:
    _, parsed, registry = month
    per_site = Counter(e["site_id"] for e in parsed.events)
    first, last = registry["outlets"][0]["site_id"], registry["outlets"][-1]["site_id"]
    # shares 1/rank^1.1: rank 1 gets 12^1.1 = 15 times rank 12
    assert per_site[first] > 5 * per_site[last] > 0


def test_daily_curve_in_vietnam_time(month) -> None:
    _, parsed, _ = month
    local_hours = Counter((e["ts"] + LOCAL_OFFSET_MS) // HOUR_MS % 24 for e in parsed.events)
    evening = local_hours[20] + local_hours[21]
    night = local_hours[2] + local_hours[3]
    assert evening > 4 * night


def test_lines_are_in_received_order(month) -> None:
    _, parsed, _ = month
    received = [e["received_at"] for e in parsed.events]
    assert received == sorted(received)


def test_readers_and_players_behave(month) -> None:
    summary, parsed, registry = month
    category = {o["site_id"]: o["category"] for o in registry["outlets"]}
    engaged = [e["engaged_ms"] for e in parsed.events if e["type"] == "engagement"]
    assert sum(4_750 <= ms <= 5_250 for ms in engaged) > 0.85 * len(engaged)
    assert max(engaged) > 30_000  # some exceed the 30 s cap
    media = [e for e in parsed.events if e["type"] == "media"]
    assert {e["media_kind"] for e in media if category[e["site_id"]] == "tv"} == {"video"}
    assert {e["media_kind"] for e in media if category[e["site_id"]] == "radio"} == {"audio"}
    assert {e["action"] for e in media} == {"start", "heartbeat", "pause", "end"}
    beats = [e["played_ms"] for e in media if e["action"] == "heartbeat"]
    assert all(30_000 <= ms < 60_000 for ms in beats)
    assert {category[e["site_id"]] for e in parsed.events if e["type"] == "page_view"} == {
        "news",
        "tv",
        "radio",
        "magazine",
    }
    # devices come back: fewer devices than visits, and some seen on several days
    assert summary.devices < summary.visits
    days_of = defaultdict(set)
    for e in parsed.events:
        days_of[(e["site_id"], e["device_id"])].add((e["ts"] + LOCAL_OFFSET_MS) // 86_400_000)
    assert sum(len(d) > 1 for d in days_of.values()) > 20


def _cli(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pressmeter simulate")
    add_arguments(parser)
    return parser.parse_args(argv)


def test_run_writes_files_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "demo" / "events.jsonl.gz"
    args = _cli(["--outlets", "4", "--days", "1", "--events-per-day", "800", "--out", str(out)])
    assert args.start == dt.date(2026, 10, 1) and args.seed == 1
    assert run(args) == 0
    assert (tmp_path / "demo" / "events.outlets.json").is_file()
    captured = capsys.readouterr()
    assert "simulate: 100%" in captured.err
    assert "events/s" in captured.out and "malformed" in captured.out


def test_run_refuses_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    for argv in (
        ["--outlets", "0", "--days", "1", "--out", str(tmp_path / "e.jsonl")],
        ["--outlets", "3", "--days", "1", "--out", str(blocker / "sub" / "e.jsonl")],
    ):
        assert run(_cli(argv)) == 2
        err = capsys.readouterr().err
        assert err.startswith("pressmeter simulate: error:") and err.count("\n") == 1
