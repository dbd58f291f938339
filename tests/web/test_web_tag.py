"""The web tag end to end: headless Chromium loads local pages carrying the
documented snippet, the tag posts to the real ingest service, and the events
are read back from Kafka. Plus the tag's build (size budget) and its node unit
tests, so CI's single pytest run covers them."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable
from gzip import compress
from typing import Any

import pytest
from cdp import Browser
from ingest_helpers import Ingest
from web_helpers import WEB, Pages

pytestmark = pytest.mark.kafka
ID = re.compile(r"^[A-Za-z0-9_-]{22}$")


def wait_events(
    ingest: Ingest, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 20
) -> list[dict[str, Any]]:
    """The events in the test's topic, read again until `until(events)` or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        events = sorted((v for _, v, _ in ingest.events()), key=lambda e: e["ts"])
        if until(events) or time.monotonic() > deadline:
            return events
        time.sleep(0.5)


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == kind]


def test_build_is_within_6kb_gzipped(tag: bytes) -> None:
    assert len(compress(tag, 9)) <= 6144
    assert b"import " not in tag[:200]  # one self-contained IIFE


def test_node_unit_tests_pass() -> None:
    done = subprocess.run(
        ["node", "--test", "test/"], cwd=WEB, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert re.search(r"^# fail 0$", done.stdout, re.M), done.stdout[-1000:]


def test_article_page_view_engagement_scroll(
    pages: Pages, ingest: Ingest, browser: Browser
) -> None:
    """Cookieless article: 1 page_view with JSON-LD metadata and a cleaned URL;
    12 s of scrolling and typing then 7 s idle → engaged_ms = 12 s + the 5 s
    activity window = 17000 ± 2500, in heartbeats of at most ~5 s each."""
    ingest.start()
    browser.goto(pages.url("/article.html?email=a@b.vn#top"))
    time.sleep(1)
    start = time.monotonic()
    while time.monotonic() - start < 12:
        browser.wheel(250)
        browser.key("j")
        time.sleep(0.5)
    time.sleep(7)
    browser.goto("about:blank")  # pagehide: the rest goes by sendBeacon
    events = wait_events(
        ingest, lambda ev: sum(e.get("engaged_ms", 0) for e in ev) >= 14500, timeout=15
    )
    views, engagements = of(events, "page_view"), of(events, "engagement")
    assert len(views) == 1, events
    view = views[0]
    assert view["url"] == pages.url("/article.html")
    assert view["content_id"] == "a123"
    assert view["section"] == "Kinh tế"
    assert view["title"] == "Giá lúa tăng mạnh"
    assert view["published"] == "2025-10-31T08:00:00+07:00"
    assert view["device_id"].startswith("c-")  # cookieless: ingest derived it
    assert {e["device_id"] for e in events} == {view["device_id"]}
    assert all(ID.match(e["event_id"]) for e in events)
    assert len({e["event_id"] for e in events}) == len(events)
    assert len(events) == 1 + len(engagements)
    engaged = sum(e["engaged_ms"] for e in engagements)
    assert 14500 <= engaged <= 19500, [e["engaged_ms"] for e in engagements]
    assert 3 <= len(engagements) <= 6
    assert all(0 < e["engaged_ms"] <= 5600 for e in engagements)
    assert all(e["url"] == view["url"] and e["content_id"] == "a123" for e in engagements)
    depths = [e["scroll_depth"] for e in engagements]
    assert depths == sorted(depths) and depths[-1] == 100
    assert all(isinstance(e["ts"], int) and isinstance(e["received_at"], int) for e in events)


def test_spa_navigations_local_device_id_and_consent(
    pages: Pages, ingest: Ingest, browser: Browser
) -> None:
    """data-storage="local": one page_view per pushState/popstate, with titles,
    sections and referrers; consent false stops sending and forgets the device."""
    pages.attrs = 'data-storage="local"'
    ingest.start()
    browser.goto(pages.url("/spa/"))
    time.sleep(0.5)
    browser.eval("go('/spa/one', 'One', 'sport')")
    time.sleep(0.5)
    browser.eval("go('/spa/two', 'Two', 'world')")
    time.sleep(0.5)
    browser.eval("history.back()")  # popstate → /spa/one
    time.sleep(1.5)  # sent: withdrawing consent drops what is still queued
    device = browser.eval("localStorage.getItem('pm_did')")
    browser.eval("pressmeter('consent', false)")
    assert browser.eval("localStorage.getItem('pm_did')") is None
    browser.eval("go('/spa/refused', 'No', 'none')")
    time.sleep(0.5)
    browser.eval("pressmeter('consent', true)")
    browser.eval("go('/spa/again', 'Again', 'home')")
    time.sleep(1.5)
    events = wait_events(ingest, lambda ev: len(of(ev, "page_view")) >= 5)
    views = of(events, "page_view")
    root = pages.url("/spa")
    assert [(v["url"], v["title"], v.get("section")) for v in views] == [
        (root + "/", "SPA home", "home"),
        (root + "/one", "One", "sport"),
        (root + "/two", "Two", "world"),
        (root + "/one", "One", "world"),  # popstate: the app kept the meta as it was
        (root + "/again", "Again", "home"),
    ]
    assert [v.get("referrer") for v in views[1:]] == [
        root + "/",
        root + "/one",
        root + "/two",
        root + "/refused",  # unmeasured, still the referrer
    ]
    assert re.fullmatch(r"w-[A-Za-z0-9_-]{22}", device)
    assert [v["device_id"] for v in views[:4]] == [device] * 4
    assert views[4]["device_id"] != device  # a new one after consent was withdrawn
    assert not [e for e in events if "refused" in e.get("url", "")]


def test_video_start_heartbeat_pause_end_played_ms(
    pages: Pages, ingest: Ingest, browser: Browser
) -> None:
    """A <video> added after load (MutationObserver), 15 s clip: play 4 s, pause
    2 s, play to the end → start(0), pause(4000), heartbeat after 10 s more
    played (10000), end(1000), each ± 1000 ms, sum 15000 ± 1000, one play_id."""
    ingest.start()
    browser.goto(pages.url("/video.html"))
    browser.eval(
        "new Promise(r => { const t = setInterval(() => { const v = document.getElementById('v');"
        " if (v && v.readyState >= 3) { clearInterval(t); r(); } }, 100); })",
        await_promise=True,
    )
    browser.eval("document.getElementById('v').play()", await_promise=True)
    time.sleep(4)
    browser.eval("document.getElementById('v').pause()")
    time.sleep(2)
    browser.eval("document.getElementById('v').play()", await_promise=True)
    browser.eval(
        "new Promise(r => document.getElementById('v').addEventListener('ended', r))",
        await_promise=True,
    )
    events = wait_events(ingest, lambda ev: any(e.get("action") == "end" for e in ev), timeout=15)
    media = of(events, "media")
    assert [m["action"] for m in media] == ["start", "pause", "heartbeat", "end"], media
    played = [m["played_ms"] for m in media]
    for got, want in zip(played, [0, 4000, 10000, 1000], strict=True):
        assert abs(got - want) <= 1000, played
    assert abs(sum(played) - 15000) <= 1000, played
    assert len({m["play_id"] for m in media}) == 1
    for m in media:
        assert (m["media_id"], m["media_kind"], m["stream"]) == ("clip-15s", "video", "vod")
        assert m["content_id"] == "v-1"
    assert len(of(events, "page_view")) == 1


def test_unsent_batch_is_retried_from_local_storage(
    pages: Pages, ingest: Ingest, browser: Browser
) -> None:
    """The ingest service is down when the first page is read: its page_view stays
    in localStorage and is delivered by the next page load, with its first ts."""
    browser.goto(pages.url("/article.html"))
    time.sleep(2.5)  # the tag tried (connection refused) and stored the batch
    stored = browser.eval("localStorage.getItem('pm_q_news1.vn')")
    assert stored and '"page_view"' in stored
    first_ts = int(time.time() * 1000)
    ingest.start()
    browser.goto(pages.url("/spa/"))
    events = wait_events(ingest, lambda ev: len(of(ev, "page_view")) >= 2)
    views = of(events, "page_view")
    assert [v["url"] for v in views] == [pages.url("/article.html"), pages.url("/spa/")]
    assert views[0]["ts"] < first_ts
    assert len({e["event_id"] for e in events}) == len(events)
    time.sleep(1.5)
    assert browser.eval("localStorage.getItem('pm_q_news1.vn')") is None
