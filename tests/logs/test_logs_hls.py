"""`pressmeter import hls-logs` on generated logs with known plays, then the
real batch pipeline on what it wrote: play_ms, media_starts, media_reach and
ivt_events equal the hand-computed values."""

from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import pytest
from hls_logs import EXPECTED_PLAYS_MS, IP_A, IP_B, IP_DC, SALT, UA_TV, at, segments, write_log
from support import Runner, cli, empty_store, one_error_line

from pressmeter.collectors.logs import HlsImport, import_logs
from pressmeter.events import event_validator


def run_import(paths: list[Path], **options: Any) -> tuple[list[dict[str, Any]], Any, bytes]:
    sink = io.BytesIO()
    options.setdefault("salt", SALT)
    report = import_logs(HlsImport(site_id="tv1.vn", **options), paths, sink)
    data = sink.getvalue()
    return [orjson.loads(line) for line in data.splitlines()], report, data


def plays_of(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    plays: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        plays[event["play_id"]].append(event)
    return plays


def test_plays_gaps_overlaps_and_malformed_lines(tmp_path: Path) -> None:
    events, report, data = run_import([write_log(tmp_path / "access.log")])
    plays = plays_of(events)
    # every play: start, heartbeats, end; played_ms ≤ 60 s each, summing to its total
    totals = []
    for play in plays.values():
        assert play[0]["action"] == "start" and play[-1]["action"] == "end"
        assert {e["action"] for e in play[1:-1]} <= {"heartbeat"}
        assert play[0]["played_ms"] == 0
        assert all(0 <= e["played_ms"] <= 60_000 for e in play)
        assert [e["ts"] for e in play] == sorted(e["ts"] for e in play)
        totals.append(sum(e["played_ms"] for e in play))
    expected = sorted(ms for per_client in EXPECTED_PLAYS_MS.values() for ms in per_client)
    assert sorted(totals) == expected
    # per client: A (two streams at once, a short and a long gap), B, C (A's address,
    # another UA), D
    by_device: dict[str, list[int]] = defaultdict(list)
    for play in plays.values():
        by_device[play[0]["device_id"]].append(sum(e["played_ms"] for e in play))
    assert sorted(sorted(v) for v in by_device.values()) == sorted(
        sorted(v) for v in EXPECTED_PLAYS_MS.values()
    )
    a_streams = {p[0]["media_id"] for p in plays.values() if len(by_device[p[0]["device_id"]]) == 3}
    assert a_streams == {"live/vtv1", "live/vov1"}
    # canonical, and the address never written
    validator = event_validator()
    for event in events:
        assert validator.validate(event) is None, event
        assert event["received_at"] == event["ts"]
    for address in (IP_A, IP_B, IP_DC):
        assert address.encode() not in data
    classes = {
        p[0]["ip_class"] for p in plays.values() if sum(e["played_ms"] for e in p) == 120_000
    }
    assert classes == {"datacenter"}
    # the lines that were not segments, and the malformed ones: counted, no crash
    assert report.malformed == {"unparsable": 2, "bad_time": 1}
    assert report.skipped == {"not_segment": 1, "status": 1, "method": 1}
    assert report.plays == 6 and report.clients == 4
    assert report.segments == 30 + 10 + 5 + 15 + 9 + 12 + 20


def test_reimport_gives_the_same_events(tmp_path: Path) -> None:
    log = write_log(tmp_path / "access.log")
    _, _, first = run_import([log])
    _, _, again = run_import([log])
    assert first == again
    _, _, other_salt = run_import([log], salt=b"another-salt-0123456789")
    assert other_salt != first  # device ids (and so ids) depend on the operator's salt


def test_gap_threshold_is_configurable(tmp_path: Path) -> None:
    events, _, _ = run_import([write_log(tmp_path / "access.log")], gap_s=30)
    totals = sorted(sum(e["played_ms"] for e in p) for p in plays_of(events).values())
    # the 45 s pause now cuts A's first vtv1 play in two: 180 s + 60 s
    assert totals == sorted([180_000, 60_000, 30_000, 90_000, 48_000, 72_000, 120_000])


def test_custom_pattern_with_durations_in_segment_names(tmp_path: Path) -> None:
    log = tmp_path / "cdn.log"
    lines = [
        f"2024-03-05T21:00:{10 * i:02d}+07:00|{IP_A}|GET /radio/vov2/chunk_d10000_s{17 + i}.aac|"
        "200|VOV app/3.1 (iPhone; iOS 17.4)"
        for i in range(6)
    ] + [
        f"2024-03-05T21:01:00+07:00|{IP_A}|GET /radio/vov2/chunk_d4000_s23.aac|200|"
        "VOV app/3.1 (iPhone; iOS 17.4)",
        "2024-03-05T21:01:00+07:00|broken",
    ]
    log.write_text("\n".join(lines) + "\n")
    events, report, _ = run_import(
        [log],
        line_pattern=r"^(?P<time>[^|]+)\|(?P<ip>[^|]+)\|(?P<method>\S+) (?P<path>[^|]+)\|"
        r"(?P<status>\d+)\|(?P<ua>.*)$",
        segment_pattern=r"^/(?P<stream>.+)/chunk_d(?P<duration_ms>\d+)_s(?P<seq>\d+)\.aac$",
        media_kind="audio",
    )
    assert [(e["action"], e["played_ms"]) for e in events] == [
        ("start", 0),
        ("heartbeat", 60_000),
        ("end", 4_000),
    ]
    assert {e["media_kind"] for e in events} == {"audio"} and events[0]["device_type"] == "mobile"
    assert report.malformed == {"unparsable": 1}


def test_import_then_batch_pipeline_gives_the_hand_computed_metrics(tmp_path: Path) -> None:
    out = tmp_path / "tv1.jsonl"
    result = cli(
        "import",
        "hls-logs",
        str(write_log(tmp_path / "access.log")),
        "--site",
        "tv1.vn",
        "--out",
        str(out),
        "--salt-file",
        str(_salt_file(tmp_path)),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "malformed         3" in result.stdout
    with empty_store("chdb", tmp_path) as store_url:
        runner = Runner(store_url, tmp_path)
        summary = runner.files([out])
        assert summary.kept == len(out.read_bytes().splitlines())
        row = runner.export()[("2024-03-05", "tv1.vn")]
        # counted: A 360 s (3 plays), B 48 s, C 72 s; D is data-centre traffic (IVT)
        assert row["play_ms"] == 240_000 + 30_000 + 90_000 + 48_000 + 72_000
        assert row["media_starts"] == 5 and row["media_completes"] == 5
        assert row["media_reach"] == 2  # A and C played ≥ 60 s; B did not
        assert row["ivt_events"] == 3  # D: start, heartbeat (60 s), end (60 s)
        assert row["visitors"] == 3
        # the log imported again with one more client: the 18 events already counted get
        # the same ids (duplicates), only the new client's play is added
        grown = tmp_path / "access-grown.log"
        extra = segments("14.161.0.5", UA_TV, "live/vtv1", at("22:00:00"), 10, 500)
        grown.write_text(
            (tmp_path / "access.log").read_text() + "\n".join(line for _, line in extra) + "\n"
        )
        second = tmp_path / "tv1-again.jsonl"
        assert (
            cli(
                "import",
                "hls-logs",
                str(grown),
                "--site",
                "tv1.vn",
                "--out",
                str(second),
                "--salt-file",
                str(tmp_path / "hls.salt"),
                cwd=tmp_path,
            ).returncode
            == 0
        )
        runner.files([second])
        again = runner.export()[("2024-03-05", "tv1.vn")]
        assert again["duplicate_events"] == summary.kept
        assert again["play_ms"] == row["play_ms"] + 60_000
        assert (again["media_starts"], again["media_reach"]) == (6, 3)


def _salt_file(folder: Path) -> Path:
    path = folder / "hls.salt"
    path.write_bytes(SALT)
    return path


def test_cli_refuses_a_missing_salt_in_one_line(tmp_path: Path) -> None:
    log = write_log(tmp_path / "access.log")
    line = one_error_line(
        cli("import", "hls-logs", str(log), "--site", "tv1.vn", "--out", "x.jsonl", cwd=tmp_path)
    )
    assert "salt" in line
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("heartbeat", [0.0, 61.0])
def test_heartbeats_longer_than_the_cap_are_refused(heartbeat: float) -> None:
    from pressmeter.errors import ConfigError

    with pytest.raises(ConfigError, match="heartbeat"):
        HlsImport(site_id="tv1.vn", salt=SALT, heartbeat_s=heartbeat)
