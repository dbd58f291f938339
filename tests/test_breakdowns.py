"""docs/standard.md §8 breakdowns on both stores: the worked example's four files byte
for byte, each source class by hand, odd values kept whole, and hosts read
column-wise as one by one."""

from __future__ import annotations

import io
from pathlib import Path

import pyarrow as pa
import pytest
from support import Runner, event

from pressmeter.metrics import BREAKDOWN_COLUMNS, breakdown_rows, write_csv
from pressmeter.pipelines.referrers import url_host, url_hosts
from pressmeter.store import open_store

EXAMPLE = Path(__file__).resolve().parent / "data/pm-metrics-1/breakdowns"


def export(runner: Runner, dimension: str, grain: str = "day") -> str:
    out = io.StringIO()
    write_csv(
        breakdown_rows(open_store(runner.store_url), dimension, grain), out, BREAKDOWN_COLUMNS
    )
    return out.getvalue()


def test_worked_example_gives_the_four_expected_files(runner: Runner) -> None:
    summary = runner.files([EXAMPLE / "events.jsonl"])
    assert (summary.read, summary.kept, summary.counted) == (28, 28, 27)
    for name, dimension, grain in (
        ("expected-day-by-source.csv", "source", "day"),
        ("expected-day-by-section.csv", "section", "day"),
        ("expected-day-by-channel.csv", "channel", "day"),
        ("expected-month-by-channel.csv", "channel", "month"),
    ):
        assert export(runner, dimension, grain) == (EXAMPLE / name).read_text(), name


def _source_rows(runner: Runner) -> dict[str, tuple[int, int, int]]:
    """site → (pageviews, visits, visitors) of its single source value, by value."""
    return {
        f"{row.site_id}:{row.value}": (row.pageviews, row.visits, row.visitors)
        for row in breakdown_rows(open_store(runner.store_url), "source")
    }


def test_each_source_class_by_hand(runner: Runner) -> None:
    # One site per case, one visit each, so each site has exactly one source value.
    at = "2026-11-14 09:00"
    cases = {
        "empty.vn": ("direct", {"referrer": ""}),
        "missing.vn": ("direct", {}),
        "www.vn": ("search", {"referrer": "https://www.google.com/search?q=a"}),
        "sub.vn": ("search", {"referrer": "https://news.search.yahoo.com/x"}),
        "evil.vn": ("other", {"referrer": "https://google.com.evil.vn/tin"}),
        "own.vn": ("internal", {"referrer": "http://WWW.own.vn:8080/home"}),
        "social.vn": ("social", {"referrer": "https://t.co/abc"}),
        "nohost.vn": ("other", {"referrer": "not a url"}),
        # tco.vn's referrer host ends with "t.co" but not with ".t.co": other.
        "tco.vn": ("other", {"referrer": "https://nett.co/"}),
    }
    events = [
        event(at=at, site=site, device=f"d-{site}", **fields) for site, (_, fields) in cases.items()
    ]
    # A visit whose first event is media without a URL: direct, though a page
    # view with a search referrer follows a minute later in the same visit.
    events += [
        event("media", at=at, site="media.vn", device="m", action="start", played_ms=0),
        event(at="2026-11-14 09:01", site="media.vn", device="m", referrer="https://bing.com/"),
    ]
    runner.batch(events)
    expected = {f"{site}:{value}": (1, 1, 1) for site, (value, _) in cases.items()}
    expected["media.vn:direct"] = (1, 1, 1)
    assert _source_rows(runner) == expected


def test_odd_values_are_stored_and_exported_whole_and_quoted(runner: Runner) -> None:
    long = "Thời sự " * 1_400  # about 10 KB of UTF-8
    odd = 'a\tb\x01c "quoted", \u202eright-to-left\u202c\nnext line'
    runner.batch(
        [
            event(at="2026-11-14 09:00", device="a", section=long),
            event(at="2026-11-14 09:00", device="b", section=odd),
            event(at="2026-11-14 09:00", device="c", section="(none)"),
            event(at="2026-11-14 09:00", device="d", section=""),
        ]
    )
    rows = breakdown_rows(open_store(runner.store_url), "section")
    assert [(r.value, r.pageviews, r.visitors) for r in rows] == [
        ("(none)", 2, 2),
        (long, 1, 1),
        (odd, 1, 1),
    ]
    text = export(runner, "section")
    assert f'"{odd.replace(chr(34), chr(34) * 2)}"' in text
    assert long in text


@pytest.mark.parametrize(
    "fields, reason",
    [({"section": 7}, "wrong_type"), ({"device_type": "fridge"}, "invalid_value")],
)
def test_a_dimension_breaking_the_event_rules_is_rejected(
    runner: Runner, fields: dict, reason: str
) -> None:
    summary = runner.batch([event(at="2026-11-14 09:00", **fields)])
    assert summary.rejected == {reason: 1}
    assert summary.kept == 0


# (URL, its §8 host): plain URLs, which url_hosts reads column-wise, and every
# shape that leaves it to url_host.
HOSTS = [
    ("https://www.google.com.vn/", "google.com.vn"),
    ("https://tinnhanh1.vn/phap-luat/a-1036108.html?x=1#top", "tinnhanh1.vn"),
    ("http://m.bing.com", "m.bing.com"),
    ("android-app://com.zing.zalo?x", "com.zing.zalo"),
    ("https://www./a", ""),
    ("https://WWW.Own.vn:8080/home", "own.vn"),
    ("https://user@www.fb.com/", "fb.com"),
    ("https://[::1]/x", "::1"),
    ("https://[::1/x", "?"),
    (" https://t.co/abc", "t.co"),
    ("https:/\t/x.vn/", "x.vn"),
    ("https://x.vn\\evil.vn/", "x.vn\\evil.vn"),
    ("//cdn.vn/a", "cdn.vn"),
    ("https://ví-dụ.vn/", "ví-dụ.vn"),
    ("not a url", "?"),
    ("1https://a.vn/", "?"),
    ("", ""),
    (None, None),
]


def test_url_hosts_reads_each_url_as_url_host() -> None:
    urls = pa.array([url for url, _ in HOSTS], pa.string())
    expected = [host for _, host in HOSTS]
    assert url_hosts(urls).to_pylist() == expected
    assert [url_host(url) if url is not None else None for url, _ in HOSTS] == expected
