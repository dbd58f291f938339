"""Closing a month (docs/standard.md §5): frozen with the hash of its inputs, later data
a new numbered revision with its exact difference, never a silent change.

Each test runs on both stores (embedded chDB and the local ClickHouse server).
The story of November 2024 (UTC+7), its figures worked out by hand:

batch 1, received in November:
  news1.vn  device a: page views 10 Nov 08:00 and 08:10: one visit, engaged (2 pv);
            device b: a page view 20 Nov 09:00: one visit, not engaged.
            → pageviews 3, visits 2, engaged_visits 1, visitors 2.
  tv1.vn    device g: media start, then a 30 s heartbeat, 15 Nov 20:00: one visit,
            engaged (30000 played ms ≥ 10000), not reached (< 60000).
            → visits 1, engaged_visits 1, visitors 1, media_starts 1, play_ms 30000.
batch 2, late (received 2 December, inside the 72 h ts window):
  news1.vn  device b: a page view 30 Nov 23:50 and one 1 Dec 00:05: a second visit
            of b, on 30 November, engaged by its December page view (§3: a visit
            belongs wholly to its first event's period); a second copy of a's first
            page view (a duplicate, counted on 10 November).
            → pageviews 4 (+1), visits 3 (+1), engaged_visits 2 (+1), duplicate_events 1 (+1).
  radio1.vn device r: a page view 29 Nov 12:00 → a new row: pageviews, visits, visitors 1.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict
from fractions import Fraction
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from support import ZONE, Runner, event, fresh_store, kafka_bootstrap, local_ms, write_lines
from test_kafka import group, produce, topic  # noqa: F401 - Kafka fixtures and producer

from pressmeter import METRICS_VERSION, schemas
from pressmeter.cli import main
from pressmeter.closing import (
    Change,
    MonthNotDue,
    Revision,
    changes_of,
    close_month,
    closed_channel_ranking,
    closed_months_touched,
    revisions,
)
from pressmeter.errors import ConfigError
from pressmeter.metrics import EXPORT_COLUMNS
from pressmeter.pipelines.recompute import RecomputeRequest, recompute
from pressmeter.ranking import Outlet, RankedChannel
from pressmeter.reporting import ReportedRow, reported_channels, reported_ranking, reported_rows
from pressmeter.store import close_stores, open_store

MONTH = "2024-11"
NOVEMBER = dt.date(2024, 11, 1)
DUE = local_ms("2024-12-04 00:00")  # 3 days after 30 November ends, local time
OUTLETS = {
    "news1.vn": Outlet("news1.vn", "News One", "news"),
    "tv1.vn": Outlet("tv1.vn", "TV One", "tv"),
    "radio1.vn": Outlet("radio1.vn", "Radio One", "radio"),
}
COUNTERS = tuple(name for name in EXPORT_COLUMNS if name not in ("period", "site_id", "ama"))
LATE = local_ms("2024-12-02 10:00")
SOON = local_ms("2024-11-12 08:00")


def first_batch() -> list[dict[str, Any]]:
    return [
        event(at="2024-11-10 08:00", device="a", event_id="a-1"),
        event(at="2024-11-10 08:10", device="a"),
        event(at="2024-11-20 09:00", device="b"),
        event(
            "media", at="2024-11-15 20:00", site="tv1.vn", device="g", action="start", played_ms=0
        ),
        event("media", at="2024-11-15 20:00:30", site="tv1.vn", device="g"),
    ]


def late_batch() -> list[dict[str, Any]]:
    return [
        event(at="2024-11-30 23:50", device="b", received_at=LATE),
        event(at="2024-12-01 00:05", device="b", received_at=LATE),
        # A copy of a's first page view, received within the 7 days of dedup.
        event(at="2024-11-10 08:00", device="a", event_id="a-1", received_at=SOON),
        event(at="2024-11-29 12:00", site="radio1.vn", device="r", received_at=LATE),
    ]


def figures(rows: list[ReportedRow], site: str) -> dict[str, int]:
    """The §4 counters of one site's row, those that are not 0."""
    row = next(r.row for r in rows if r.row.site_id == site)
    return {name: getattr(row, name) for name in COUNTERS if getattr(row, name)}


NEWS_1 = {"pageviews": 3, "visits": 2, "engaged_visits": 1, "visitors": 2}
NEWS_2 = {"pageviews": 4, "visits": 3, "engaged_visits": 2, "visitors": 2, "duplicate_events": 1}
TV = {"visits": 1, "engaged_visits": 1, "visitors": 1, "media_starts": 1, "play_ms": 30000}
RADIO = {"pageviews": 1, "visits": 1, "visitors": 1}


def test_close_twice_then_late_events_make_revision_two(runner: Runner, tmp_path: Path) -> None:
    first = runner.batch(first_batch())
    assert first.kept == 5
    store = open_store(runner.store_url)

    one = close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE)
    assert one.written and one.revision.revision == 1 and one.changes == ()
    assert one.revision.input_runs == 1
    assert one.revision.metrics_version == METRICS_VERSION
    assert json.loads(one.revision.list_versions) == schemas.list_versions()
    # The same inputs, read again (the file is skipped), closed again: same hash, no revision.
    runner.files([tmp_path / "batch1.jsonl"])
    again = close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE + 86_400_000)
    assert not again.written
    assert again.revision == one.revision
    assert [r.revision for r in revisions(store, MONTH)] == [1]

    late = runner.batch(late_batch())
    assert (late.kept, late.duplicates) == (3, 1)
    assert closed_months_touched(store, late.run_id) == [one.revision]  # December is open
    # Closed and not closed again yet: the export still shows revision 1, frozen;
    # --newest shows what the store computes now.
    frozen = reported_rows(store, ZONE, "month", NOVEMBER, NOVEMBER, "news1.vn", now_ms=DUE)
    assert [(r.row.period, r.status) for r in frozen] == [(MONTH, "closed-r1")]
    assert figures(frozen, "news1.vn") == NEWS_1
    newest = reported_rows(store, ZONE, "month", newest=True, now_ms=DUE)
    assert [(r.row.period, r.row.site_id, r.status) for r in newest] == [
        (MONTH, "news1.vn", "final"),
        (MONTH, "radio1.vn", "final"),
        (MONTH, "tv1.vn", "final"),
        ("2024-12", "news1.vn", "preliminary"),
    ]
    assert figures(newest, "news1.vn") == NEWS_2
    ranking, status = reported_ranking(store, MONTH, ZONE, None)
    assert status.startswith("status: closed, revision 1 frozen ")
    assert [(e.outlet.site_id, e.rank, e.metrics.pageviews) for e in ranking["news"]] == [
        ("news1.vn", 1, 3)
    ]
    assert ranking["radio"] == []
    ranking, status = reported_ranking(store, MONTH, ZONE, OUTLETS, newest=True)
    assert status == "status: newest figures; the month is closed, revision 1"
    assert [(e.outlet.site_id, e.rank, e.metrics.pageviews) for e in ranking["radio"]] == [
        ("radio1.vn", 1, 1)
    ]

    two = close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE + 2 * 86_400_000)
    assert two.written and two.revision.revision == 2
    assert two.revision.input_runs == 2
    assert two.revision.inputs_hash != one.revision.inputs_hash
    expected = (
        Change("news1.vn", "counted_events", 3, 4),
        Change("news1.vn", "duplicate_events", 0, 1),
        Change("news1.vn", "engaged_visits", 1, 2),
        Change("news1.vn", "pageviews", 3, 4),
        Change("news1.vn", "visits", 2, 3),
        Change("radio1.vn", "counted_events", 0, 1),
        Change("radio1.vn", "pageviews", 0, 1),
        Change("radio1.vn", "visitors", 0, 1),
        Change("radio1.vn", "visits", 0, 1),
    )
    assert two.changes == expected
    assert changes_of(store, two.revision) == expected
    assert [c.delta for c in expected] == [1] * 9
    assert changes_of(store, one.revision) == ()
    # Revision 1 is still there, unchanged; the export now shows revision 2.
    history = revisions(store, MONTH)
    assert [(r.revision, r.inputs_hash) for r in history] == [
        (1, one.revision.inputs_hash),
        (2, two.revision.inputs_hash),
    ]
    shown = reported_rows(store, ZONE, "month", now_ms=DUE)
    assert [(r.row.site_id, r.status) for r in shown if r.row.period == MONTH] == [
        ("news1.vn", "closed-r2"),
        ("radio1.vn", "closed-r2"),
        ("tv1.vn", "closed-r2"),
    ]
    assert figures(shown, "news1.vn") == NEWS_2
    assert figures(shown, "tv1.vn") == TV
    assert figures(shown, "radio1.vn") == RADIO
    ranking, status = reported_ranking(store, MONTH, ZONE, None)
    assert status.startswith("status: closed, revision 2 frozen ")
    assert [(e.outlet.name, e.rank, e.metrics.visitors) for e in ranking["radio"]] == [
        ("Radio One", 1, 1)
    ]
    assert close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE + 3 * 86_400_000).written is False
    # A page view on 1 December joins no November visit: no figure changes, but it is
    # an input of November (it could have), so a new revision says so, with no change.
    runner.batch([event(at="2024-12-01 02:00", device="c", received_at=LATE)])
    three = close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE + 4 * 86_400_000)
    assert (three.written, three.revision.revision, three.changes) == (True, 3, ())
    assert three.revision.input_runs == 3
    assert three.render().endswith(", ranked); no figure changed")


def test_the_same_inputs_give_the_same_hash_in_another_store(
    runner: Runner, tmp_path: Path
) -> None:
    """The hash names what was read (file contents), not the store or the run ids."""
    runner.batch(first_batch())
    mine = close_month(open_store(runner.store_url), MONTH, ZONE, now_ms=DUE).revision
    close_stores()
    with fresh_store(runner.store_url, tmp_path / "other") as other:
        Runner(other, tmp_path).files([tmp_path / "batch1.jsonl"])
        theirs = close_month(open_store(other), MONTH, ZONE, now_ms=DUE).revision
    assert (theirs.inputs_hash, theirs.input_runs) == (mine.inputs_hash, 1)
    assert theirs.close_id != mine.close_id


def test_a_close_that_died_half_way_is_not_read(
    runner: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fault injected: the store refuses the revision row, the last a close writes.
    The figure and ranking rows already written must not count, now or later."""
    runner.batch(first_batch())
    store = open_store(runner.store_url)
    insert = store.insert

    def dies_at_the_revision_row(table: str, data: Any) -> None:
        if table == "closed_months":
            raise KeyboardInterrupt
        insert(table, data)

    monkeypatch.setattr(store, "insert", dies_at_the_revision_row)
    with pytest.raises(KeyboardInterrupt):
        close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE)
    monkeypatch.undo()
    assert revisions(store) == []
    assert reported_ranking(store, MONTH, ZONE, OUTLETS, now_ms=DUE)[1] == (
        "status: final for now (not closed yet: a late batch can still change it)"
    )

    one = close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE)
    assert one.written and one.revision.revision == 1
    shown = reported_rows(store, ZONE, "month", NOVEMBER, NOVEMBER)
    assert [(r.row.site_id, r.status) for r in shown] == [
        ("news1.vn", "closed-r1"),
        ("tv1.vn", "closed-r1"),
    ]
    assert figures(shown, "news1.vn") == NEWS_1
    ranking, _ = reported_ranking(store, MONTH, ZONE, None)
    assert [(e.outlet.site_id, e.rank) for e in ranking["news"] + ranking["tv"]] == [
        ("news1.vn", 1),
        ("tv1.vn", 1),
    ]


def test_an_open_month_is_not_closed(runner: Runner) -> None:
    runner.batch(first_batch())
    store = open_store(runner.store_url)
    with pytest.raises(MonthNotDue) as refused:
        close_month(store, MONTH, ZONE, now_ms=DUE - 1)
    assert str(refused.value) == (
        "2024-11 cannot be closed before 2024-12-04 00:00 Asia/Ho_Chi_Minh "
        "(3 days after it ends, docs/standard.md §5)"
    )
    with pytest.raises(ConfigError, match=r"^not a month \(YYYY-MM\): '2024-13'$"):
        close_month(store, "2024-13", ZONE, now_ms=DUE)
    with pytest.raises(ConfigError) as empty:
        close_month(store, "2024-10", ZONE, now_ms=DUE)
    assert str(empty.value) == "2024-10: the store holds no figures of this month; nothing to close"
    assert revisions(store) == []
    # Meanwhile its figures say what they are: a day is final 72 h after it ends.
    rows = reported_rows(store, ZONE, "day", now_ms=local_ms("2024-11-20 12:00"))
    assert [(r.row.period, r.row.site_id, r.status) for r in rows] == [
        ("2024-11-10", "news1.vn", "final"),
        ("2024-11-15", "tv1.vn", "final"),
        ("2024-11-20", "news1.vn", "preliminary"),
    ]
    day = dt.date(2024, 11, 20)
    for now, status in ((local_ms("2024-11-24 00:00") - 1, "preliminary"), (DUE - 1, "final")):
        rows = reported_rows(store, ZONE, "day", day, day, now_ms=now)
        assert [r.status for r in rows] == [status]
    # A month is final for now (not closed) from the moment it may be closed.
    for now, status in ((DUE - 1, "preliminary"), (DUE, "final")):
        month = reported_rows(store, ZONE, "month", now_ms=now)
        assert [(r.row.site_id, r.status) for r in month] == [
            ("news1.vn", status),
            ("tv1.vn", status),
        ]


def test_close_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture
) -> None:
    """The operator's view: refusal in one line, the batch run by `close month`,
    `close status`, and the export's status column."""
    store = f"chdb:{tmp_path / 'store'}"
    data = Runner(store, tmp_path).batch(first_batch())
    assert data.kept == 5
    late = write_lines(tmp_path / "late.jsonl", late_batch())

    assert main(["close", "month", MONTH, "--at", "2024-12-03T23:59", "--store", store]) == 2
    refused = capsys.readouterr()
    assert refused.err.strip().splitlines() == [
        "pressmeter: error: 2024-11 cannot be closed before 2024-12-04 00:00 Asia/Ho_Chi_Minh "
        "(3 days after it ends, docs/standard.md §5)"
    ]
    assert main(["close", "month", MONTH, "--at", "2024-12-04T00:00", "--store", store]) == 0
    assert capsys.readouterr().out.startswith("2024-11: closed as revision 1 (inputs sha256:")
    at = ["--at", "2024-12-05T00:00", "--store", store]
    assert main(["close", "month", MONTH, "--input", str(late), *at]) == 0
    out = capsys.readouterr().out
    assert "  kept        3 new events" in out
    assert "2024-11: closed as revision 2 (inputs sha256:" in out
    assert "  news1.vn pageviews: 3 -> 4 (+1)" in out

    assert main(["close", "status", "--changes", "--store", store]) == 0
    lines = capsys.readouterr().out.splitlines()
    heads = [line.split("  ") for line in lines if not line.startswith(" ")]
    assert [head[:3] for head in heads] == [
        ["2024-11", "revision 1", "closed 2024-12-03T17:00:00Z"],
        ["2024-11", "revision 2", "closed 2024-12-04T17:00:00Z"],
    ]
    assert [re.fullmatch(r"inputs sha256:[0-9a-f]{64} \((\d) runs\)", h[3])[1] for h in heads] == [
        "1",
        "2",
    ]
    assert lines[2:11] == [
        "    news1.vn counted_events: 3 -> 4 (+1)",
        "    news1.vn duplicate_events: 0 -> 1 (+1)",
        "    news1.vn engaged_visits: 1 -> 2 (+1)",
        "    news1.vn pageviews: 3 -> 4 (+1)",
        "    news1.vn visits: 2 -> 3 (+1)",
        "    radio1.vn counted_events: 0 -> 1 (+1)",
        "    radio1.vn pageviews: 0 -> 1 (+1)",
        "    radio1.vn visitors: 0 -> 1 (+1)",
        "    radio1.vn visits: 0 -> 1 (+1)",
    ]

    export = ["metrics", "export", "--grain", "month", "--from", MONTH, "--to", MONTH]
    assert main([*export, "--site", "news1.vn", "--with-status", "--store", store]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "period,site_id,pageviews,visits,engaged_visits,visitors,engaged_ms,media_starts,"
        "media_completes,play_ms,media_reach,ama,ivt_events,duplicate_events,status",
        "2024-11,news1.vn,4,3,2,2,0,0,0,0,0,0.0000,0,1,closed-r2",
    ]
    # A later plain batch of the closed month: said, and not reported until closed again.
    later = write_lines(tmp_path / "later.jsonl", [event(at="2024-11-16 09:00", site="tv1.vn")])
    assert main(["pipeline", "batch", "--input", str(later), "--store", store]) == 0
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "2024-11 is closed (revision 2) and this run stored events of it: it still reports "
        "revision 2; `pressmeter close month 2024-11` records a new revision if a figure changed"
    ]
    capsys.readouterr()
    for option, expected in (
        ([], "2024-11,tv1.vn,0,1,1,1,0,1,0,30000,0,0.0000,0,0,closed-r2"),
        (["--newest"], "2024-11,tv1.vn,1,2,1,2,0,1,0,30000,0,0.0000,0,0,final"),
    ):
        site = ["--site", "tv1.vn", "--with-status", *option, "--store", store]
        assert main([*export, *site]) == 0
        assert capsys.readouterr().out.splitlines()[1:] == [expected]
    assert main(["ranking", "--month", MONTH, "--store", store]) == 2
    assert capsys.readouterr().err.strip() == (
        "pressmeter: error: 2024-11 was closed without an outlet registry, so no ranking "
        "was frozen; --newest ranks the figures as computed now"
    )


@pytest.mark.kafka
def test_close_month_runs_the_kafka_batch_that_is_due(
    store_url: str,
    topic: str,  # noqa: F811 - the fixture of test_kafka
    group: str,  # noqa: F811
    capsys: pytest.CaptureFixture,
) -> None:
    """`close month --kafka` reads what the group has not read yet, then closes."""
    close = ["close", "month", MONTH, "--kafka", kafka_bootstrap(), "--topic", topic]
    close += ["--group", group, "--store", store_url]
    produce(topic, first_batch())
    assert main([*close, "--at", "2024-12-04T00:00"]) == 0
    assert "2024-11: closed as revision 1 (inputs sha256:" in capsys.readouterr().out
    produce(topic, late_batch())
    assert main([*close, "--at", "2024-12-05T00:00"]) == 0
    out = capsys.readouterr().out
    assert "  read        4 records" in out
    assert "2024-11: closed as revision 2 (inputs sha256:" in out
    assert [line for line in out.splitlines() if line.startswith("  news1.vn")] == [
        "  news1.vn counted_events: 3 -> 4 (+1)",
        "  news1.vn duplicate_events: 0 -> 1 (+1)",
        "  news1.vn engaged_visits: 1 -> 2 (+1)",
        "  news1.vn pageviews: 3 -> 4 (+1)",
        "  news1.vn visits: 2 -> 3 (+1)",
    ]
    assert main([*close, "--at", "2024-12-06T00:00"]) == 0
    out = capsys.readouterr().out
    assert "  read        0 records" in out
    assert "2024-11: unchanged since revision 2 (inputs sha256:" in out
    store = open_store(store_url)
    assert [r.input_runs for r in revisions(store, MONTH)] == [1, 2]


# The channels of November 2024 (§5 channel ranking), worked out by hand:
# batch 1:  tv1.vn    device g on tv1-news: a start and a 30 s heartbeat (15 Nov 20:00);
#                     device h on tv1-phim: a start and two 30 s heartbeats (16 Nov 21:00),
#                     60 s played: reached.
#           radio1.vn device r on radio1-fm: a start and a 30 s heartbeat (17 Nov 07:00).
#           → tv: 1 tv1-phim (60000 ms, 2/3), 2 tv1-news (30000 ms, 1/3); radio: radio1-fm (1/1).
# batch 2, late: device g on tv1-news again, 29 Nov 20:00, a 45 s heartbeat: a second
#           visit, engaged; still not reached (30 s and 45 s: reach is judged per day, §8).
#           → tv: 1 tv1-news (75000 ms, 75/135), 2 tv1-phim (60000 ms, 60/135).
def channel_batch() -> list[dict[str, Any]]:
    def play(site: str, device: str, channel: str, at: str, **fields: Any) -> dict[str, Any]:
        return event("media", at=at, site=site, device=device, channel_id=channel, **fields)

    return [
        play("tv1.vn", "g", "tv1-news", "2024-11-15 20:00", action="start", played_ms=0),
        play("tv1.vn", "g", "tv1-news", "2024-11-15 20:00:30"),
        play("tv1.vn", "h", "tv1-phim", "2024-11-16 21:00", action="start", played_ms=0),
        play("tv1.vn", "h", "tv1-phim", "2024-11-16 21:00:30"),
        play("tv1.vn", "h", "tv1-phim", "2024-11-16 21:01"),
        play("radio1.vn", "r", "radio1-fm", "2024-11-17 07:00", action="start", played_ms=0),
        play("radio1.vn", "r", "radio1-fm", "2024-11-17 07:00:30"),
    ]


def late_channel_batch() -> list[dict[str, Any]]:
    return [
        event(
            "media", at="2024-11-29 20:00", site="tv1.vn", device="g", channel_id="tv1-news",
            played_ms=45_000, received_at=LATE,
        )
    ]  # fmt: skip


def channels(ranking: dict[str, list[RankedChannel]]) -> dict[str, list[tuple]]:
    """Per category: (rank, outlet name, channel, play_ms, media_reach, share)."""
    return {
        category: [
            (e.rank, e.outlet.name, e.metrics.value, e.metrics.play_ms, e.metrics.media_reach,
             e.share)
            for e in ranked
        ]
        for category, ranked in ranking.items()
    }  # fmt: skip


CHANNELS_1 = {
    "tv": [
        (1, "TV One", "tv1-phim", 60_000, 1, Fraction(2, 3)),
        (2, "TV One", "tv1-news", 30_000, 0, Fraction(1, 3)),
    ],
    "radio": [(1, "Radio One", "radio1-fm", 30_000, 0, Fraction(1))],
}
CHANNELS_2 = {
    "tv": [
        (1, "TV One", "tv1-news", 75_000, 0, Fraction(75, 135)),
        (2, "TV One", "tv1-phim", 60_000, 1, Fraction(60, 135)),
    ],
    "radio": CHANNELS_1["radio"],
}


def test_the_channel_ranking_is_frozen_and_a_change_makes_revision_two(runner: Runner) -> None:
    runner.batch(channel_batch())
    store = open_store(runner.store_url)
    one = close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE)
    assert (one.written, one.revision.channels_ranked) == (True, 1)
    assert channels(closed_channel_ranking(store, one.revision)) == CHANNELS_1

    runner.batch(late_channel_batch())
    frozen, status = reported_channels(store, MONTH, ZONE, None)
    assert channels(frozen) == CHANNELS_1
    assert status.startswith("status: closed, revision 1 frozen 2024-12-03T17:00:00Z (inputs")
    newest, status = reported_channels(store, MONTH, ZONE, OUTLETS, newest=True)
    assert channels(newest) == CHANNELS_2
    assert status == "status: newest figures; the month is closed, revision 1"

    two = close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE + 86_400_000)
    assert two.written and two.revision.revision == 2
    channel_changes = [c for c in two.changes if c.channel]
    assert channel_changes == [
        Change("tv1.vn", "engaged_visits", 1, 2, "tv1-news"),
        Change("tv1.vn", "play_ms", 30_000, 75_000, "tv1-news"),
        Change("tv1.vn", "visits", 1, 2, "tv1-news"),
    ]
    assert changes_of(store, two.revision) == two.changes
    assert "  tv1.vn channel tv1-news play_ms: 30000 -> 75000 (+45000)" in two.render()
    frozen, status = reported_channels(store, MONTH, ZONE, None)
    assert channels(frozen) == CHANNELS_2
    assert status.startswith("status: closed, revision 2 frozen 2024-12-04T17:00:00Z (inputs")
    # Revision 1 keeps its ranking; closing again on the same inputs writes nothing.
    assert channels(closed_channel_ranking(store, one.revision)) == CHANNELS_1
    assert not close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE + 2 * 86_400_000).written
    assert [r.revision for r in revisions(store, MONTH)] == [1, 2]


def test_channels_that_change_alone_make_a_revision(runner: Runner) -> None:
    """Run without the §8 rows, the month closes with no channel; recomputed with
    them (same inputs, same month rows), the channels alone make revision 2."""
    runner.batch(channel_batch(), breakdowns=False)
    store = open_store(runner.store_url)
    one = close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE)
    assert channels(closed_channel_ranking(store, one.revision)) == {"tv": [], "radio": []}
    recompute(RecomputeRequest(runner.store_url, ZONE))
    two = close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE + 86_400_000)
    assert (two.written, two.revision.inputs_hash) == (True, one.revision.inputs_hash)
    assert [str(c) for c in two.changes if c.site_id == "radio1.vn"] == [
        "radio1.vn channel radio1-fm engaged_visits: 0 -> 1 (+1)",
        "radio1.vn channel radio1-fm media_starts: 0 -> 1 (+1)",
        "radio1.vn channel radio1-fm play_ms: 0 -> 30000 (+30000)",
        "radio1.vn channel radio1-fm visitors: 0 -> 1 (+1)",
        "radio1.vn channel radio1-fm visits: 0 -> 1 (+1)",
    ]
    assert all(c.channel for c in two.changes)  # no month row changed
    assert channels(closed_channel_ranking(store, two.revision)) == CHANNELS_1
    # Closed without a registry: no channel ranking frozen, said in one line.
    runner.batch(late_channel_batch())
    close_month(store, MONTH, ZONE, None, now_ms=DUE + 2 * 86_400_000)
    with pytest.raises(ConfigError) as refused:
        reported_channels(store, MONTH, ZONE, OUTLETS)
    assert str(refused.value) == (
        "2024-11 was closed without an outlet registry, so no channel ranking was frozen; "
        "--newest ranks the figures as computed now"
    )


def test_a_revision_closed_before_channels_were_frozen_says_so(runner: Runner) -> None:
    """A revision recorded before migration 0012 (channels_ranked 0, its default)."""
    runner.batch(channel_batch())
    store = open_store(runner.store_url)
    old = Revision(MONTH, 1, "0011", DUE, "0" * 64, 1, METRICS_VERSION, "{}", ZONE, 1, 0)
    store.insert("closed_months", pa.Table.from_pylist([asdict(old)]))
    with pytest.raises(ConfigError) as refused:
        reported_channels(store, MONTH, ZONE, OUTLETS)
    assert str(refused.value) == (
        "2024-11 revision 1 was closed before channel rankings were frozen, so no channel "
        "ranking was frozen; --newest ranks the figures as computed now"
    )
    # Its inputs differ from the store's: the next close writes revision 2, ranked,
    # and compares no channel (revision 1 has none to compare with).
    two = close_month(store, MONTH, ZONE, OUTLETS, now_ms=DUE)
    assert (two.revision.revision, two.revision.channels_ranked) == (2, 1)
    assert not [c for c in two.changes if c.channel]
    assert channels(reported_channels(store, MONTH, ZONE, None)[0]) == CHANNELS_1


def test_ranking_channels_shows_the_frozen_revision(
    runner: Runner, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    registry = tmp_path / "outlets.json"
    registry.write_text(
        json.dumps(
            {
                "schema": "iglu:vn.pressmeter/outlet_registry/jsonschema/1-0-0",
                "outlets": [asdict(outlet) for outlet in OUTLETS.values()],
            }
        )
    )
    runner.batch(channel_batch())
    store = ["--store", runner.store_url]
    at = ["--at", "2024-12-04T00:00", *store]
    assert main(["close", "month", MONTH, "--outlets", str(registry), *at]) == 0
    runner.batch(late_channel_batch())
    capsys.readouterr()
    rank = ["ranking", "--channels", "--month", MONTH, *store]
    for option, shown in (
        ([], ["tv1-phim", "tv1-news"]),
        (["--newest", "--outlets", str(registry)], ["tv1-news", "tv1-phim"]),
    ):
        assert main([*rank, *option]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [line.split()[3] for line in lines if "TV One" in line] == shown
        assert lines[-1].startswith(
            "status: closed, revision 1 frozen 2024-12-03T17:00:00Z" if not option
            else "status: newest figures; the month is closed, revision 1"
        )  # fmt: skip
    assert main([*rank, "--newest"]) == 2
    assert capsys.readouterr().err.strip() == (
        "pressmeter: error: no outlet registry: give --outlets FILE or set PM_OUTLETS"
    )
