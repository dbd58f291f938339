"""docs/standard.md §2 steps 2-3 and §3, rule by rule, with numbers worked out by hand.

Every test runs the real batch pipeline on both stores (`runner`: embedded chDB and
the local ClickHouse 18.16 server) and compares whole export rows, so a number that
leaks into the wrong metric fails too. Independent scenarios share a batch (a run
costs about a second per store) but each has its own site, so each site's row can
be read on its own: the comment above a scenario's events gives its arithmetic.

`visitors` and `media_reach` come from `uniqCombined` sketches, which are exact at
the handful of devices used here; `test_sketch_precision` holds them to the
standard's tolerance at sizes where a sketch may be approximate.
"""

from __future__ import annotations

from typing import Any

from support import BROWSER_UA, DAY, MINUTE, event, local_ms, write_lines

from pressmeter import schemas
from pressmeter.metrics import EXPORT_COLUMNS
from pressmeter.store import CURRENT_FACTS, open_store

COUNTERS = tuple(name for name in EXPORT_COLUMNS if name not in ("period", "site_id"))
SECOND = 1_000
HALF_HOUR = 1_800_000
WEEK = 7 * DAY
Export = dict[tuple[str, str], dict[str, Any]]


def expect(**values: Any) -> dict[str, Any]:
    """A whole export row: the numbers given, every other counter 0, ama 0.0000."""
    assert set(values) <= set(COUNTERS), set(values) - set(COUNTERS)
    row: dict[str, Any] = dict.fromkeys(COUNTERS, 0)
    row["ama"] = "0.0000"
    row.update(values)
    return row


def numbers(export: Export, period: str, site: str) -> dict[str, Any]:
    """The export row of `site` in `period`, without its key columns."""
    assert (period, site) in export, f"no row for {site} in {period}: {sorted(export)}"
    return {name: export[(period, site)][name] for name in COUNTERS}


def periods(export: Export, site: str) -> list[str]:
    return sorted(period for period, row_site in export if row_site == site)


def ivt_breakdown(runner: Any) -> dict[tuple[str, str], tuple[int, int, int, int]]:
    """(day, site) → (ivt_events, ivt_ua, ivt_datacenter, ivt_rate) of current facts."""
    rows = open_store(runner.store_url).rows(
        "SELECT toString(day), site_id, ivt_events, ivt_ua, ivt_datacenter, ivt_rate "
        f"FROM daily_facts WHERE {CURRENT_FACTS}"
    )
    return {(day, site): tuple(int(n) for n in counts) for day, site, *counts in rows}


def assert_counts_add_up(summary: Any) -> None:
    assert summary.read == sum(summary.rejected.values()) + summary.duplicates + summary.kept


# ---------------------------------------------------------------------------- visits


def test_visit_gaps_ties_local_midnight_and_month_end(runner) -> None:
    eleven = local_ms("2024-11-13 00:00")  # local midnight between the 12th and the 13th
    events = [
        # gap30.vn: gaps of exactly 1,800,000 ms never start a visit, even chained:
        # "exact" 10:00 → 10:30 is one visit (2 page views: engaged); "chain" 12:00 →
        # 12:30 (engagement 1000) → 13:00 is one visit over an hour (2 page views).
        # 4 page views, 2 visits, both engaged, 2 visitors, engaged_ms 1000.
        event(at="2024-11-12 10:00", site="gap30.vn", device="exact"),
        event(at="2024-11-12 10:30", site="gap30.vn", device="exact"),
        event(at="2024-11-12 12:00", site="gap30.vn", device="chain"),
        event(
            "engagement", at="2024-11-12 12:30", site="gap30.vn", device="chain", engaged_ms=1000
        ),
        event(at="2024-11-12 13:00", site="gap30.vn", device="chain"),
        # gap31.vn: 1,800,001 ms after the previous event: a second visit, neither engaged.
        event(at="2024-11-12 10:00", site="gap31.vn", device="over"),
        event(at=local_ms("2024-11-12 10:30") + 1, site="gap31.vn", device="over"),
        # ties.vn: three page views with the same ts, read in reverse id order, then one
        # exactly 30 min later (same visit), then one 30 min + 1 ms after that (new
        # visit): 5 page views, 2 visits, 1 engaged (the first, with 4 page views).
        event(at="2024-11-12 09:00", site="ties.vn", device="t", event_id="t-c"),
        event(at="2024-11-12 09:00", site="ties.vn", device="t", event_id="t-b"),
        event(at="2024-11-12 09:00", site="ties.vn", device="t", event_id="t-a"),
        event(at="2024-11-12 09:30", site="ties.vn", device="t", event_id="t-0"),
        event(at=local_ms("2024-11-12 10:00") + 1, site="ties.vn", device="t", event_id="t-9"),
        # night.vn: "n" reads at 23:50 and sends 10 s of engagement at 00:05: one visit on
        # the 12th, engaged only by its input of the 13th. "n2": 23:40 → 00:09, one visit
        # on the 12th with 2 page views. 12th: 2 page views, 2 visits, 2 engaged, 2
        # visitors. 13th: 1 page view, 0 visits, 2 visitors, engaged_ms 10000.
        event(at="2024-11-12 23:50", site="night.vn", device="n"),
        event("engagement", at="2024-11-13 00:05", site="night.vn", device="n", engaged_ms=10_000),
        event(at="2024-11-12 23:40", site="night.vn", device="n2"),
        event(at="2024-11-13 00:09", site="night.vn", device="n2"),
        # tz.vn: local (UTC+7) midnight splits days, UTC midnight (07:00 local) does not.
        # "d1" 23:59:59.999 and 00:00:00.000: one visit (1 ms gap) over two days.
        # "d2" 06:59:59.999 and 07:00:00.000: both on the 13th.
        # 12th: 1 page view, 1 visit (engaged), 1 visitor; 13th: 3 page views, 1 visit
        # (engaged), 2 visitors.
        event(at=eleven - 1, site="tz.vn", device="d1"),
        event(at=eleven, site="tz.vn", device="d1"),
        event(at=eleven + 7 * 3_600_000 - 1, site="tz.vn", device="d2"),
        event(at=eleven + 7 * 3_600_000, site="tz.vn", device="d2"),
        # month.vn: "m1" 31 Oct 23:50 → engagement 20 s at 00:05 → 1 Nov 00:10, one
        # engaged visit of October; "m2" reads on 1 and 2 November (two visits).
        event(at="2024-10-31 23:50", site="month.vn", device="m1"),
        event("engagement", at="2024-11-01 00:05", site="month.vn", device="m1", engaged_ms=20_000),
        event(at="2024-11-01 00:10", site="month.vn", device="m1"),
        event(at="2024-11-01 10:00", site="month.vn", device="m2"),
        event(at="2024-11-02 10:00", site="month.vn", device="m2"),
    ]
    summary = runner.batch(events)
    assert (summary.read, summary.kept, summary.duplicates) == (len(events), len(events), 0)

    day = runner.export("day")
    assert numbers(day, "2024-11-12", "gap30.vn") == expect(
        pageviews=4, visits=2, engaged_visits=2, visitors=2, engaged_ms=1000
    )
    assert numbers(day, "2024-11-12", "gap31.vn") == expect(pageviews=2, visits=2, visitors=1)
    assert numbers(day, "2024-11-12", "ties.vn") == expect(
        pageviews=5, visits=2, engaged_visits=1, visitors=1
    )
    assert numbers(day, "2024-11-12", "night.vn") == expect(
        pageviews=2, visits=2, engaged_visits=2, visitors=2
    )
    assert numbers(day, "2024-11-13", "night.vn") == expect(
        pageviews=1, visitors=2, engaged_ms=10_000
    )
    assert numbers(day, "2024-11-12", "tz.vn") == expect(
        pageviews=1, visits=1, engaged_visits=1, visitors=1
    )
    assert numbers(day, "2024-11-13", "tz.vn") == expect(
        pageviews=3, visits=1, engaged_visits=1, visitors=2
    )
    assert numbers(day, "2024-10-31", "month.vn") == expect(
        pageviews=1, visits=1, engaged_visits=1, visitors=1
    )
    assert numbers(day, "2024-11-01", "month.vn") == expect(
        pageviews=2, visits=1, visitors=2, engaged_ms=20_000
    )
    assert numbers(day, "2024-11-02", "month.vn") == expect(pageviews=1, visits=1, visitors=1)
    assert periods(day, "month.vn") == ["2024-10-31", "2024-11-01", "2024-11-02"]
    assert periods(day, "tz.vn") == ["2024-11-12", "2024-11-13"]

    month = runner.export("month")
    # Additive metrics are the sums of the days; visitors are distinct over the month
    # (month.vn: 2, not 2 + 1; tz.vn: 2, not 1 + 2; night.vn: 2, not 2 + 2).
    assert numbers(month, "2024-10", "month.vn") == expect(
        pageviews=1, visits=1, engaged_visits=1, visitors=1
    )
    assert numbers(month, "2024-11", "month.vn") == expect(
        pageviews=3, visits=2, visitors=2, engaged_ms=20_000
    )
    assert numbers(month, "2024-11", "tz.vn") == expect(
        pageviews=4, visits=2, engaged_visits=2, visitors=2
    )
    assert numbers(month, "2024-11", "night.vn") == expect(
        pageviews=3, visits=2, engaged_visits=2, visitors=2, engaged_ms=10_000
    )


# ----------------------------------------------------------- caps and engaged visits


def test_caps_and_engaged_visits(runner) -> None:
    at = local_ms("2024-11-20 10:00")
    caps = [
        # caps.vn, "c": engagements 45000 30000 29999 0 10^10 → 30000 + 30000 + 29999 + 0
        # + 30000 = 119999; plays 90000 60001 60000 59999 10^10 → 4 * 60000 + 59999 =
        # 299999. "c2": two engagements of 25000 (50000: the cap is per event, not per
        # visit) and two plays of 50000 (100000).
        *(
            event("engagement", at=at + i * MINUTE, site="caps.vn", device="c", engaged_ms=v)
            for i, v in enumerate([45_000, 30_000, 29_999, 0, 10**10])
        ),
        *(
            event("media", at=at + (5 + i) * MINUTE, site="caps.vn", device="c", played_ms=v)
            for i, v in enumerate([90_000, 60_001, 60_000, 59_999, 10**10])
        ),
        event("engagement", at=at, site="caps.vn", device="c2", engaged_ms=25_000),
        event("engagement", at=at + MINUTE, site="caps.vn", device="c2", engaged_ms=25_000),
        event("media", at=at + 2 * MINUTE, site="caps.vn", device="c2", played_ms=50_000),
        event("media", at=at + 3 * MINUTE, site="caps.vn", device="c2", played_ms=50_000),
    ]

    def on_engaged(kind: str, device: str, minutes: float = 0, **fields: Any) -> dict:
        return event(
            kind, at=at + int(minutes * MINUTE), site="engaged.vn", device=device, **fields
        )

    engaged = [
        on_engaged("page_view", "pv1"),  # 1 page view: not engaged
        on_engaged("page_view", "pv2"),  # 2 page views: engaged
        on_engaged("page_view", "pv2", 10),
        on_engaged("page_view", "eng10000"),  # Σ engaged_ms 10000: engaged
        on_engaged("engagement", "eng10000", 1, engaged_ms=10_000),
        on_engaged("page_view", "eng9999"),  # 9999: not engaged
        on_engaged("engagement", "eng9999", 1, engaged_ms=9_999),
        on_engaged("engagement", "eng-sum", 0, engaged_ms=4_000),  # 4000 + 6000: engaged
        on_engaged("engagement", "eng-sum", 1, engaged_ms=6_000),
        on_engaged("media", "play10000", played_ms=10_000),  # Σ played_ms 10000: engaged
        on_engaged("media", "play9999", played_ms=9_999),  # 9999: not engaged
        on_engaged("media", "play-sum", 0, played_ms=5_000),  # 5000 + 5000: engaged
        on_engaged("media", "play-sum", 1, played_ms=5_000),
        # 6000 then 6000 again 30 min + 1 ms later: two visits of 6000, neither engaged.
        on_engaged("engagement", "two-visits", 0, engaged_ms=6_000),
        event(
            "engagement",
            at=at + HALF_HOUR + 1,
            site="engaged.vn",
            device="two-visits",
            engaged_ms=6_000,
        ),
        # 1 page view + 5000 engaged + 5000 played: the sums are not mixed, not engaged.
        on_engaged("page_view", "mixed"),
        on_engaged("engagement", "mixed", 1, engaged_ms=5_000),
        on_engaged("media", "mixed", 2, played_ms=5_000),
    ]
    runner.batch(caps + engaged)

    day = runner.export("day")
    # play_ms 399999 / 60000 / 1440 = 0.0046296… → 0.0046; both devices reached.
    assert numbers(day, "2024-11-20", "caps.vn") == expect(
        visits=2,
        engaged_visits=2,
        visitors=2,
        engaged_ms=119_999 + 50_000,
        play_ms=299_999 + 100_000,
        media_reach=2,
        ama="0.0046",
    )
    # 11 visits (two-visits has 2), 5 engaged (pv2, eng10000, eng-sum, play10000,
    # play-sum); engaged_ms 10000 + 9999 + 10000 + 12000 + 5000 = 46999; play_ms
    # 10000 + 9999 + 10000 + 5000 = 34999 → ama 0.000405… → 0.0004.
    assert numbers(day, "2024-11-20", "engaged.vn") == expect(
        pageviews=6,
        visits=11,
        engaged_visits=5,
        visitors=10,
        engaged_ms=46_999,
        play_ms=34_999,
        ama="0.0004",
    )


# --------------------------------------------------------------------------- media


def test_media_counters_reach_and_ama(runner) -> None:
    def play(device: str, at: int | str, action: str, played_ms: int, site: str = "tv.vn") -> dict:
        return event("media", at=at, site=site, device=device, action=action, played_ms=played_ms)

    events = [
        # tv.vn on the 20th. "g": start 0, 30 s, 30 s, end reporting 90 s (→ 60 s):
        # 120000, reached; again 60000 on the 21st (reached that day too).
        play("g", "2024-11-20 20:00:00", "start", 0),
        play("g", "2024-11-20 20:00:30", "heartbeat", 30_000),
        play("g", "2024-11-20 20:01:00", "heartbeat", 30_000),
        play("g", "2024-11-20 20:02:30", "end", 90_000),
        play("g", "2024-11-21 09:00", "heartbeat", 60_000),
        # "h": start, end at 59999: one engaged visit, not reached.
        play("h", "2024-11-20 20:00", "start", 0),
        play("h", "2024-11-20 20:01", "end", 59_999),
        # "split": 30 s at 08:00 and 30 s at 15:00: two visits, reached (Σ of the day).
        play("split", "2024-11-20 08:00", "heartbeat", 30_000),
        play("split", "2024-11-20 15:00", "heartbeat", 30_000),
        # "cross": 40 s at 23:50 and 40 s at 00:05: one visit of 80 s on the 20th, but
        # 40000 on each day: reached on neither day, so not in the month either.
        play("cross", "2024-11-20 23:50", "heartbeat", 40_000),
        play("cross", "2024-11-21 00:05", "heartbeat", 40_000),
        # "pause": a pause carries 25 s of play; it is neither a start nor an end.
        play("pause", "2024-11-20 12:00", "pause", 25_000),
        # ama.vn: 21600 ms on the 20th → 21600 / 60000 / 1440 = 0.00025 exactly → 0.0003
        # (half up); 108000 ms on the 21st → 0.00125 → 0.0013; November: 129600 / 60000
        # / (1440 * 30) = 0.00005 exactly → 0.0001 (with 31 days: 0.0000).
        play("a1", "2024-11-20 10:00", "heartbeat", 21_600, site="ama.vn"),
        play("a1", "2024-11-21 10:00", "heartbeat", 60_000, site="ama.vn"),
        play("a1", "2024-11-21 10:01", "heartbeat", 48_000, site="ama.vn"),
        # October (31 days): 100 plays of 60 s = 6,000,000 ms → a day's ama 0.0694…,
        # the month's 6e6 / 60000 / 44640 = 0.00224… → 0.0022 (with 30 days: 0.0023).
        *(
            play("a2", local_ms("2024-10-15 20:00") + i * MINUTE, "heartbeat", 60_000, "ama.vn")
            for i in range(100)
        ),
    ]
    runner.batch(events)

    day = runner.export("day")
    # 120000 + 59999 + 60000 + 40000 + 25000 = 304999 → ama 0.00353… → 0.0035.
    # Visits: g, h, split (2), cross, pause = 6, all with ≥ 10000 ms played.
    assert numbers(day, "2024-11-20", "tv.vn") == expect(
        visits=6,
        engaged_visits=6,
        visitors=5,
        media_starts=2,
        media_completes=2,
        play_ms=304_999,
        media_reach=2,
        ama="0.0035",
    )
    # 60000 (g) + 40000 (cross, whose visit belongs to the 20th) → ama 0.00115… → 0.0012.
    assert numbers(day, "2024-11-21", "tv.vn") == expect(
        visits=1, engaged_visits=1, visitors=2, play_ms=100_000, media_reach=1, ama="0.0012"
    )
    assert numbers(day, "2024-11-20", "ama.vn") == expect(
        visits=1, engaged_visits=1, visitors=1, play_ms=21_600, ama="0.0003"
    )
    assert numbers(day, "2024-11-21", "ama.vn") == expect(
        visits=1, engaged_visits=1, visitors=1, play_ms=108_000, media_reach=1, ama="0.0013"
    )
    assert numbers(day, "2024-10-15", "ama.vn") == expect(
        visits=1, engaged_visits=1, visitors=1, play_ms=6_000_000, media_reach=1, ama="0.0694"
    )

    month = runner.export("month")
    # Reach of the month: devices reached on some day (g, split), not the sum of the
    # days (2 + 1) and not by the month's total play (cross has 80000).
    # ama 404999 / 60000 / 43200 = 0.000156… → 0.0002.
    assert numbers(month, "2024-11", "tv.vn") == expect(
        visits=7,
        engaged_visits=7,
        visitors=5,
        media_starts=2,
        media_completes=2,
        play_ms=404_999,
        media_reach=2,
        ama="0.0002",
    )
    assert numbers(month, "2024-11", "ama.vn") == expect(
        visits=2, engaged_visits=2, visitors=1, play_ms=129_600, media_reach=1, ama="0.0001"
    )
    assert numbers(month, "2024-10", "ama.vn") == expect(
        visits=1, engaged_visits=1, visitors=1, play_ms=6_000_000, media_reach=1, ama="0.0022"
    )


# ----------------------------------------------------------------------------- IVT


def _mixed_case(text: str) -> str:
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(text))


def test_invalid_traffic_rules_and_breakdown(runner) -> None:
    patterns = schemas.bot_patterns()
    # The standard's minimum list is in the shipped file (which may hold more).
    assert {
        "bot",
        "crawl",
        "spider",
        "slurp",
        "headlesschrome",
        "phantomjs",
        "python-requests",
        "curl/",
        "wget",
        "httpclient",
        "java/",
        "go-http-client",
        "scrapy",
        "facebookexternalhit",
    } <= set(patterns)
    at = local_ms("2024-11-25 10:00")
    # ua.vn: one page view per bot pattern (in mixed case, inside a longer agent), one
    # from "GoogleBot", one with an empty agent: all GIVT-UA. Counted: a browser and
    # two near misses ("curl" without "/", "Java" without "/").
    bot_agents = [f"Mozilla/5.0 (compatible; {_mixed_case(p)} 1.0)" for p in patterns]
    bot_agents += ["Mozilla/5.0 (compatible; GoogleBot/2.1)", ""]
    ua_events = [
        event(at=at + i * SECOND, site="ua.vn", device=f"bot-{i}", ua=agent)
        for i, agent in enumerate(bot_agents)
    ]
    human_agents = [BROWSER_UA, "Mozilla/5.0 curl 8.4", "Mozilla/5.0 (X11; Linux) Java 17"]
    ua_events += [
        event(at=at, site="ua.vn", device=f"human-{i}", ua=agent)
        for i, agent in enumerate(human_agents)
    ]
    # dc.vn: "dc" (datacenter) page view and engagement: GIVT-DC; a bot agent from a
    # datacenter is tallied under GIVT-UA (first rule). "unknown" and "home"
    # (residential) are counted: 2 page views, 1 engaged visit (home: 15000 ms).
    dc_events = [
        event(at=at, site="dc.vn", device="dc", ip_class="datacenter"),
        event("engagement", at=at + 1, site="dc.vn", device="dc", ip_class="datacenter"),
        event(at=at, site="dc.vn", device="dc-bot", ip_class="datacenter", ua="Scrapy/2.11"),
        event(at=at, site="dc.vn", device="unknown", ip_class="unknown"),
        event(at=at, site="dc.vn", device="home"),
        event("engagement", at=at + 1, site="dc.vn", device="home", engaged_ms=15_000),
    ]
    # rate.vn, on 25 November (local).
    minute_1015 = local_ms("2024-11-25 10:15")
    minute_1430 = local_ms("2024-11-25 14:30")
    minute_1100 = local_ms("2024-11-25 11:00")
    minute_1600 = local_ms("2024-11-25 16:00")
    bot_view = event(at=at, site="bots.vn", device="b", ua="Googlebot/2.1")
    rate_events = [
        # "d30": 30 page views in the UTC minute 10:15 and one at 10:16:00.000 (31 in
        # 61 s, but at most 30 in any one minute): counted, one engaged visit.
        *(event(at=minute_1015 + i * SECOND, site="rate.vn", device="d30") for i in range(30)),
        event(at=minute_1015 + MINUTE, site="rate.vn", device="d30"),
        # "d30dup": 30 page views and a second copy of one of them: 30 kept → counted.
        *(
            event(at=minute_1100 + i * SECOND, site="rate.vn", device="d30dup", event_id=f"k{i}")
            for i in range(30)
        ),
        event(
            at=minute_1100,
            site="rate.vn",
            device="d30dup",
            event_id="k0",
            received_at=minute_1100 + 2 * MINUTE,
        ),
        # "d31": 31 page views in the UTC minute 14:30: every event of the device on
        # this site and local day is SIVT-RATE, including its engagement, its plays and
        # page views at 01:00 (still 24 Nov in UTC) and 23:59:59.999: 37 events.
        *(event(at=minute_1430 + i * 1900, site="rate.vn", device="d31") for i in range(31)),
        event("engagement", at=minute_1430 + MINUTE, site="rate.vn", device="d31"),
        event(at="2024-11-25 08:00", site="rate.vn", device="d31"),
        event(at="2024-11-25 01:00", site="rate.vn", device="d31"),
        event("media", at="2024-11-25 21:00", site="rate.vn", device="d31", action="start"),
        event("media", at="2024-11-25 21:01", site="rate.vn", device="d31", played_ms=60_000),
        event(at=local_ms("2024-11-26 00:00") - 1, site="rate.vn", device="d31"),
        # ... but not its page view of the next local day, nor its page view on another
        # site in the same minute, nor another device in that minute.
        event(at="2024-11-26 00:00", site="rate.vn", device="d31"),
        event(at=minute_1430 + 30 * SECOND, site="other.vn", device="d31"),
        event(at=minute_1430 + 10 * SECOND, site="rate.vn", device="other"),
        # "dmix": 20 page views from a bot agent and 11 from a browser in the minute
        # 16:00: 31 kept page views (IVT or not) → SIVT-RATE. The 20 are tallied under
        # GIVT-UA, the 11 and a later engagement under SIVT-RATE.
        *(
            event(
                at=minute_1600 + i * SECOND,
                site="rate.vn",
                device="dmix",
                ua="python-requests/2.31",
            )
            for i in range(20)
        ),
        *(
            event(at=minute_1600 + (20 + i) * SECOND, site="rate.vn", device="dmix")
            for i in range(11)
        ),
        event("engagement", at=minute_1600 + 2 * MINUTE, site="rate.vn", device="dmix"),
        # bots.vn: a bot page view sent twice. Dedup comes before IVT: 1 duplicate and
        # 1 IVT event; nothing but removed events still gives the site a row.
        bot_view,
        {**bot_view, "received_at": bot_view["received_at"] + 1},
    ]
    summary = runner.batch(ua_events + dc_events + rate_events)
    assert_counts_add_up(summary)
    assert summary.duplicates == 2
    n_ua = len(patterns) + 2
    assert summary.ivt == {"ua": n_ua + 1 + 20 + 1, "datacenter": 2, "rate": 37 + 12}

    day = runner.export("day")
    assert numbers(day, "2024-11-25", "ua.vn") == expect(
        pageviews=3, visits=3, visitors=3, ivt_events=n_ua
    )
    assert numbers(day, "2024-11-25", "dc.vn") == expect(
        pageviews=2, visits=2, engaged_visits=1, visitors=2, engaged_ms=15_000, ivt_events=3
    )
    # Counted: d30 (31 page views), d30dup (30), other (1): 62 page views, 3 visits,
    # 2 engaged. IVT: d31 37 + dmix 32 = 69.
    assert numbers(day, "2024-11-25", "rate.vn") == expect(
        pageviews=62,
        visits=3,
        engaged_visits=2,
        visitors=3,
        ivt_events=69,
        duplicate_events=1,
    )
    # d31's page view at 00:00 on the 26th is counted and starts its own visit (the
    # IVT page view 1 ms earlier is not part of any visit).
    assert numbers(day, "2024-11-26", "rate.vn") == expect(pageviews=1, visits=1, visitors=1)
    assert numbers(day, "2024-11-25", "other.vn") == expect(pageviews=1, visits=1, visitors=1)
    assert numbers(day, "2024-11-25", "bots.vn") == expect(ivt_events=1, duplicate_events=1)

    assert ivt_breakdown(runner) == {
        ("2024-11-25", "ua.vn"): (n_ua, n_ua, 0, 0),
        ("2024-11-25", "dc.vn"): (3, 1, 2, 0),
        ("2024-11-25", "rate.vn"): (69, 20, 0, 49),
        ("2024-11-26", "rate.vn"): (0, 0, 0, 0),
        ("2024-11-25", "other.vn"): (0, 0, 0, 0),
        ("2024-11-25", "bots.vn"): (1, 1, 0, 0),
    }


# --------------------------------------------------------------------------- dedup


def test_dedup_within_a_run(runner) -> None:
    at = local_ms("2024-11-27 10:00")

    def copy(event_id: str, device: str, received_at: int, **fields: Any) -> dict:
        fields.setdefault("ts", at)
        return event(
            "engagement",
            at=fields.pop("ts"),
            site="dup.vn",
            device=device,
            event_id=event_id,
            received_at=received_at,
            **fields,
        )

    late_ts = local_ms("2024-11-28 00:30")
    events = [
        # x1: the copy received first is kept although read second: 3000, not 7000.
        copy("x1", "d1", at + 10, engaged_ms=7_000),
        copy("x1", "d1", at + 5, engaged_ms=3_000),
        # x2: same received_at: the first read is kept: 4000, not 8000.
        copy("x2", "d2", at + 5, engaged_ms=4_000),
        copy("x2", "d2", at + 5, engaged_ms=8_000),
        # x3: three copies, two duplicates; the kept copy carries 5000.
        copy("x3", "d3", at + 1, engaged_ms=5_000),
        copy("x3", "d3", at + 2, engaged_ms=5_000),
        copy("x3", "d3", at + 3, engaged_ms=5_000),
        # x4: kept on the 27th; the later copy has a ts on the 28th, where its
        # duplicate is counted (and nothing else: the 28th has no audience).
        event(at="2024-11-27 23:00", site="dup.vn", device="d4", event_id="x4"),
        event(at=late_ts, site="dup.vn", device="d4", event_id="x4", received_at=late_ts + 500),
        # The same id on another site is another event.
        event("engagement", at=at, site="dup2.vn", device="d1", event_id="x1", engaged_ms=7_000),
    ]
    # x3 again, received before all its copies but invalid (ip_class "other"): refused
    # before dedup, so it neither wins nor counts as a duplicate.
    events.append(copy("x3", "d3", at, engaged_ms=9_000, ip_class="other"))
    # x5, a tie across files: the copy in the file listed first is read first, even
    # at its 12th line against the other file's 1st: 1000, not 9000.
    events.append(copy("x5", "d5", at + 5, engaged_ms=1_000))
    first = write_lines(runner.folder / "first.jsonl", events)
    second = write_lines(
        runner.folder / "second.jsonl", [copy("x5", "d5", at + 5, engaged_ms=9_000)]
    )
    summary = runner.files([first, second])
    assert (summary.read, summary.duplicates_within_run, summary.kept) == (13, 6, 6)
    assert (summary.duplicates_across_runs, summary.rejected) == (0, {"invalid_value": 1})
    assert_counts_add_up(summary)

    day = runner.export("day")
    # 3000 + 4000 + 5000 + 1000 = 13000 engaged; d1..d5 one visit each, none engaged.
    assert numbers(day, "2024-11-27", "dup.vn") == expect(
        pageviews=1, visits=5, visitors=5, engaged_ms=13_000, duplicate_events=5
    )
    assert numbers(day, "2024-11-28", "dup.vn") == expect(duplicate_events=1)
    assert numbers(day, "2024-11-27", "dup2.vn") == expect(visits=1, visitors=1, engaged_ms=7_000)
    month = runner.export("month")
    assert numbers(month, "2024-11", "dup.vn") == expect(
        pageviews=1, visits=5, visitors=5, engaged_ms=13_000, duplicate_events=6
    )


def test_dedup_across_runs_and_its_seven_day_window(runner) -> None:
    at = local_ms("2024-11-27 10:00")
    kept = event(at=at, site="dup.vn", device="d1", event_id="y1")  # received_at at + 500
    engagement = event("engagement", at=at + MINUTE, site="dup.vn", device="d1", engaged_ms=6_000)
    first = runner.batch([kept, engagement])
    assert (first.kept, first.duplicates) == (2, 0)
    one_visit = expect(pageviews=1, visits=1, visitors=1, engaged_ms=6_000)
    assert numbers(runner.export("day"), "2024-11-27", "dup.vn") == one_visit

    # The same file again is the same copy: skipped, nothing changes.
    again = runner.files([runner.folder / "batch1.jsonl"])
    assert again.skipped and again.read == 0
    assert numbers(runner.export("day"), "2024-11-27", "dup.vn") == one_visit

    # Another copy of y1 (another device, an hour later, received 1 h later): a
    # duplicate of the earlier run, counted on its own day, no audience.
    later = {**kept, "device_id": "d9", "ts": at + 60 * MINUTE, "received_at": at + 60 * MINUTE}
    second = runner.batch([later])
    assert (second.duplicates_across_runs, second.kept) == (1, 0)
    assert numbers(runner.export("day"), "2024-11-27", "dup.vn") == {
        **one_visit,
        "duplicate_events": 1,
    }

    # Received exactly 7 days after the kept copy: still a duplicate (fresh ts, on
    # 4 December).
    received = kept["received_at"] + WEEK
    week = {**kept, "device_id": "d9", "ts": received - 500, "received_at": received}
    third = runner.batch([week])
    assert (third.duplicates_across_runs, third.kept) == (1, 0)
    day = runner.export("day")
    assert numbers(day, "2024-12-04", "dup.vn") == expect(duplicate_events=1)

    # Received 7 days + 1 ms after it: a new event, counted on 4 December.
    received += 1
    beyond = {**kept, "device_id": "d9", "ts": received - 500, "received_at": received}
    fourth = runner.batch([beyond])
    assert (fourth.duplicates, fourth.kept) == (0, 1)
    day = runner.export("day")
    assert numbers(day, "2024-12-04", "dup.vn") == expect(
        pageviews=1, visits=1, visitors=1, duplicate_events=1
    )
    assert numbers(day, "2024-11-27", "dup.vn") == {**one_visit, "duplicate_events": 1}


# -------------------------------------------------------------- batch independence


def _independence_events(site: str, cross_site: str) -> tuple[list[dict], list[dict]]:
    """The two halves of one day's traffic, for `site` and `cross_site`."""
    rate_minute = local_ms("2024-11-18 15:00")
    part_one = [
        # "join": 10:00 and 10:50 are two visits until 10:25 arrives in part two.
        event(at="2024-11-18 10:00", site=site, device="join", event_id="j1"),
        event(at="2024-11-18 10:50", site=site, device="join", event_id="j3"),
        # "rate": 20 page views in the minute 15:00, a page view at 09:00 and an
        # engagement at 16:00; part two brings 11 more page views in that minute.
        *(
            event(at=rate_minute + i * 2_000, site=site, device="rate", event_id=f"r{i}")
            for i in range(20)
        ),
        event(at="2024-11-18 09:00", site=site, device="rate", event_id="r-pv"),
        event("engagement", at="2024-11-18 16:00", site=site, device="rate", event_id="r-eng"),
        # "media": 30 s at 12:00, reached once part two adds 30 s at 18:00.
        event("media", at="2024-11-18 12:00", site=site, device="media", event_id="m1"),
        # "dup": the same line in both parts.
        event(at="2024-11-18 11:00", site=site, device="dup", event_id="dup-1"),
        event(at="2024-11-19 10:00", site=site, device="plain", event_id="p1"),
        # A visit crossing midnight whose second half comes in part two.
        event(at="2024-11-19 23:40", site=cross_site, device="cross", event_id="c1"),
    ]
    part_two = [
        event(at="2024-11-18 10:25", site=site, device="join", event_id="j2"),
        *(
            event(at=rate_minute + i * 2_000 + 1_000, site=site, device="rate", event_id=f"s{i}")
            for i in range(11)
        ),
        event("media", at="2024-11-18 18:00", site=site, device="media", event_id="m2"),
        event(at="2024-11-18 11:00", site=site, device="dup", event_id="dup-1"),
        event(at="2024-11-20 00:05", site=cross_site, device="cross", event_id="c2"),
    ]
    for item in part_one + part_two:
        item["received_at"] = item["ts"] + 500  # the same copies whichever site
    return part_one, part_two


def test_batches_are_independent(runner) -> None:
    """The same traffic in one run (whole*.vn) or in two runs (split*.vn) gives the
    same export, in one store: dedup and facts are per site."""
    whole_one, whole_two = _independence_events("whole.vn", "xwhole.vn")
    split_one, split_two = _independence_events("split.vn", "xsplit.vn")
    runner.batch(whole_one + whole_two + split_one)
    second = runner.batch(split_two)
    assert second.duplicates_across_runs == 1
    assert second.ivt["rate"] == 20 + 11 + 2  # the rate device's whole day, recomputed

    rename = {"split.vn": "whole.vn", "xsplit.vn": "xwhole.vn"}
    for grain in ("day", "month"):
        export = runner.export(grain)
        whole = {key: row for key, row in export.items() if key[1] in rename.values()}
        split = {
            (period, rename[site]): {**row, "site_id": rename[site]}
            for (period, site), row in export.items()
            if site in rename
        }
        assert split == whole, grain
        assert len(whole) == (4 if grain == "day" else 2)

    day = runner.export("day")
    # join: one visit of 3 page views; media: two visits of 30 s, reached (60000);
    # dup: one page view, one duplicate; rate: 33 events of SIVT-RATE.
    assert numbers(day, "2024-11-18", "split.vn") == expect(
        pageviews=4,
        visits=4,
        engaged_visits=3,
        visitors=3,
        play_ms=60_000,
        media_reach=1,
        ama="0.0007",
        ivt_events=33,
        duplicate_events=1,
    )
    assert numbers(day, "2024-11-19", "split.vn") == expect(pageviews=1, visits=1, visitors=1)
    # The crossing visit (23:40 → 00:05) is one engaged visit of the 19th, although its
    # run touched only the 20th.
    assert numbers(day, "2024-11-19", "xsplit.vn") == expect(
        pageviews=1, visits=1, engaged_visits=1, visitors=1
    )
    assert numbers(day, "2024-11-20", "xsplit.vn") == expect(pageviews=1, visitors=1)
    month = runner.export("month")
    assert numbers(month, "2024-11", "split.vn") == expect(
        pageviews=5,
        visits=5,
        engaged_visits=3,
        visitors=4,
        play_ms=60_000,
        media_reach=1,
        ivt_events=33,
        duplicate_events=1,
    )


# ------------------------------------------------------------------ sketch precision


def test_sketch_precision(runner) -> None:
    """99 devices on n99.vn: visitors 99 ± 2; 5000 devices each playing 60 s on
    n5000.vn: visitors and media_reach within 2 % of 5000 (4900..5100)."""
    at = local_ms("2024-11-22 12:00")
    events = [event(at=at + i, site="n99.vn", device=f"reader-{i:03d}") for i in range(99)]
    events += [
        event("media", at=at + i, site="n5000.vn", device=f"viewer-{i:05d}", played_ms=60_000)
        for i in range(5000)
    ]
    runner.batch(events)
    for grain, period in (("day", "2024-11-22"), ("month", "2024-11")):
        export = runner.export(grain)
        small = numbers(export, period, "n99.vn")
        assert abs(small["visitors"] - 99) <= 2, (grain, small["visitors"])
        assert (small["pageviews"], small["visits"]) == (99, 99)
        large = numbers(export, period, "n5000.vn")
        assert abs(large["visitors"] - 5000) <= 100, (grain, large["visitors"])
        assert abs(large["media_reach"] - 5000) <= 100, (grain, large["media_reach"])
        assert (large["visits"], large["engaged_visits"], large["play_ms"]) == (
            5000,
            5000,
            300_000_000,
        )
    # 3e8 / 60000 / 1440 = 3.47222… → 3.4722
    assert runner.export("day")[("2024-11-22", "n5000.vn")]["ama"] == "3.4722"
