"""`pressmeter simulate`: the synthetic traffic must be valid, deterministic, counted
honestly in its summary, shaped like a press market (Zipf, daily curve in the
configured zone), and carry every breakdown dimension of docs/standard.md §8."""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from random import Random
from urllib.parse import urlsplit

import orjson
import pytest
from jsonschema import Draft202012Validator

from pressmeter.calendar import LocalCalendar, date_to_day
from pressmeter.cli import main
from pressmeter.ranking import load_outlets
from pressmeter.simulator import (
    SimulationSummary,
    add_arguments,
    build_outlets,
    default_registry_path,
    run,
    simulate,
)
from pressmeter.simulator.simulation import local_hours

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


def _evening_over_night(events: list[dict], offset_ms: int) -> float:
    """Events at 20-22 h over events at 2-4 h, in the clock `offset_ms` from UTC."""
    hours = Counter((e["ts"] + offset_ms) // HOUR_MS % 24 for e in events)
    return (hours[20] + hours[21]) / (hours[2] + hours[3])


def test_daily_curve_in_vietnam_time(month) -> None:
    _, parsed, _ = month
    assert _evening_over_night(parsed.events, LOCAL_OFFSET_MS) > 4


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


def test_the_registry_reads_back_with_the_shared_loader(tmp_path: Path) -> None:
    """The simulator writes the one registry format `pressmeter ranking` reads."""
    out = tmp_path / "ev.jsonl"
    simulate(6, 1, START, out, default_registry_path(out), seed=2, events_per_day=300)
    outlets = build_outlets(6, Random(2))
    assert load_outlets(str(default_registry_path(out))) == {
        o.site_id: o.registered for o in outlets
    }
    assert outlets[0].registered.name == "Tin Nhanh 1"
    assert [o.host for o in outlets[:3]] == [
        "tinnhanh1.vn",
        outlets[1].site_id,
        f"www.{outlets[2].site_id}",
    ]


def _first_visit_events(events: list[dict]) -> list[dict]:
    """The events that open a visit: no event of the device in the 30 minutes before."""
    last: dict[tuple[str, str], int] = {}
    firsts = []
    for e in sorted(events, key=lambda e: (e["ts"], e["event_id"])):
        key = (e["site_id"], e["device_id"])
        if e["ts"] - last.get(key, -(10**15)) > 1_800_000:
            firsts.append(e)
        last[key] = e["ts"]
    return firsts


def _first_page_views(events: list[dict]) -> list[dict]:
    """The page views of human devices that open a visit."""
    return [
        e
        for e in _first_visit_events(events)
        if e["type"] == "page_view" and e["ip_class"] == "residential"
    ]


def test_visits_come_from_every_source_class(month) -> None:
    """Landing referrers: none, empty, internal (with and without www.), search and
    social engines including subdomains, and look-alike hosts."""
    _, parsed, _ = month
    landings = _first_page_views(parsed.events)
    referrers = Counter(e.get("referrer") for e in landings)
    assert referrers[None] > 0 and referrers[""] > 0  # direct: missing and empty
    hosts = {urlsplit(r).hostname for r in referrers if r}
    assert {"www.google.com", "www.google.com.vn", "coccoc.com", "m.bing.com"} <= hosts
    assert {"l.facebook.com", "m.facebook.com", "zalo.me", "m.youtube.com"} <= hosts
    assert {"baomoi.com", "google.com.evil.vn", "com.zing.zalo"} <= hosts  # other
    internal = [
        e
        for e in parsed.events
        if e.get("referrer") and urlsplit(e["referrer"]).hostname == urlsplit(e["url"]).hostname
    ]
    assert {urlsplit(e["url"]).hostname.startswith("www.") for e in internal} == {True, False}
    internal_ids = {e["event_id"] for e in internal}
    assert any(e["event_id"] in internal_ids for e in landings)  # back through an open tab
    media_first = [e for e in _first_visit_events(parsed.events) if e["type"] == "media"]
    assert media_first and all("url" not in e and "referrer" not in e for e in media_first)


def test_every_breakdown_dimension_is_emitted(month) -> None:
    _, parsed, registry = month
    category = {o["site_id"]: o["category"] for o in registry["outlets"]}
    events = parsed.events
    sections = {e["section"] for e in events if "section" in e}
    assert {"Thời sự", "Kinh doanh, Tài chính", "Chương trình", "Âm nhạc"} <= sections
    assert all(e.get("section") for e in events if e["type"] == "engagement")
    pages = [e for e in events if e["type"] == "page_view"]
    assert all(
        e["content_id"].isdigit() and e["url"].endswith(f"-{e['content_id']}.html") for e in pages
    )
    assert len({(e["site_id"], e["content_id"]) for e in pages}) > 200
    media = [e for e in events if e["type"] == "media"]
    for kind, prefix in (("tv", "-ch"), ("radio", "-fm")):
        plays = [e for e in media if category[e["site_id"]] == kind]
        assert {e["stream"] for e in plays} == {"live", "vod"}
        assert all(prefix in e["channel_id"] for e in plays)
        assert all(e["media_id"] == e["channel_id"] for e in plays if e["stream"] == "live")
        assert all(e["content_id"] for e in plays if e["stream"] == "vod")
    assert any("section" in e and "url" in e for e in media)  # a play in a programme page
    humans = [e for e in events if e["ip_class"] == "residential"]
    assert {e["device_type"] for e in humans} == {"mobile", "desktop", "tablet", "tv", "other"}
    provinces = {e["province"] for e in humans}
    assert {"VN-SG", "VN-HN", "VN-57"} <= provinces
    assert all(re.fullmatch(r"VN-[0-9A-Z]{2,3}", p) for p in provinces)


def _events_in_zone(tmp_path: Path, zone: str) -> list[dict]:
    out = tmp_path / zone.replace("/", "_") / "ev.jsonl"
    simulate(3, 2, START, out, default_registry_path(out), seed=5, events_per_day=3000, zone=zone)
    return Parsed(_read_lines(out)).events


def test_the_zone_setting_moves_the_local_days_and_hours(tmp_path: Path) -> None:
    """Days and the daily curve follow the configured zone, not a fixed UTC+7."""
    for zone, offset_ms in (("UTC", 0), ("America/New_York", -4 * HOUR_MS)):
        events = [
            e for e in _events_in_zone(tmp_path, zone) if e["received_at"] - e["ts"] < HOUR_MS
        ]
        calendar = LocalCalendar(zone)
        first = min(e["ts"] for e in events)
        assert (
            calendar.day_start_ms(date_to_day(START))
            <= first
            < calendar.day_start_ms(date_to_day(START)) + HOUR_MS
        )
        assert calendar.day(first) == date_to_day(START)
        assert _evening_over_night(events, offset_ms) > 4
    # 1 October 2026 00:00 in New York (EDT) is 04:00 UTC
    assert LocalCalendar("America/New_York").day_start_ms(date_to_day(START)) == 1790827200000


def test_days_with_a_daylight_saving_change_plan_23_or_25_hours(tmp_path: Path) -> None:
    """Berlin: 29 March 2026 has 23 local hours, 25 October 2026 has 25; the extra
    hour is planned as the curve's last one, and gets traffic."""
    calendar = LocalCalendar("Europe/Berlin")
    spring = list(local_hours(calendar, date_to_day(dt.date(2026, 3, 29))))
    autumn = list(local_hours(calendar, date_to_day(dt.date(2026, 10, 25))))
    assert [h for h, _ in spring] == list(range(23))
    assert [h for h, _ in autumn] == [*range(24), 23]
    assert spring[0][1] == 1774738800000  # 2026-03-28T23:00Z, midnight CET
    assert autumn[24][1] - autumn[0][1] == 24 * HOUR_MS
    out = tmp_path / "dst.jsonl"
    simulate(
        2,
        1,
        dt.date(2026, 10, 25),
        out,
        default_registry_path(out),
        seed=1,
        events_per_day=3000,
        zone="Europe/Berlin",
    )
    starts = [e["ts"] for e in Parsed(_read_lines(out)).events if e["type"] == "page_view"]
    assert any(autumn[24][1] <= ts < autumn[24][1] + HOUR_MS for ts in starts)


def test_the_command_reads_the_zone_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["simulate", "--outlets", "2", "--days", "1", "--events-per-day", "400", "--out"]
    monkeypatch.setenv("PM_ZONE", "UTC")
    assert main([*argv, "utc.jsonl"]) == 0
    monkeypatch.setenv("PM_ZONE", "Asia/Ho_Chi_Minh")
    assert main([*argv, "hcm.jsonl"]) == 0
    utc = Parsed(_read_lines(tmp_path / "utc.jsonl")).events
    hcm = Parsed(_read_lines(tmp_path / "hcm.jsonl")).events
    day_start = date_to_day(START) * 86_400_000
    assert min(e["ts"] for e in utc) >= day_start > min(e["ts"] for e in hcm)
    monkeypatch.setenv("PM_ZONE", "Mars/Olympus")
    capsys.readouterr()
    assert main([*argv, "mars.jsonl"]) == 2
    assert capsys.readouterr().err == (
        "pressmeter simulate: error: unknown time zone 'Mars/Olympus' "
        "(expected e.g. Asia/Ho_Chi_Minh)\n"
    )
