"""Synthetic press traffic for demos, tests and benchmarks (`pressmeter simulate`).

Writes an outlet registry and a JSON Lines file of canonical events (METRICS.md
section 1) that look like a national press market: a few big outlets and a long
tail (Zipf), a daily rhythm in Vietnam time, readers who come back across days,
TV and radio plays with heartbeats, and the dirt a real collector sees (bots,
data-centre traffic, rate bursts, retried duplicates, late and broken lines),
each in a small known share that the summary counts, so the pipeline's
rejects, duplicates and IVT can be checked against what was injected.

Same arguments give byte-identical files: every choice comes from one
`random.Random(seed)`, no wall clock is read for the data, and the gzip header
carries no time stamp.

Speed matters (the benchmark and the README demo write a million events), so
times are integers in ms, never datetime objects; lines are serialized with
orjson as soon as they are made and written in large chunks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import gzip
import math
import os
import sys
import time
import unicodedata
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from random import Random
from typing import IO, Any

import orjson

__all__ = [
    "NOISE",
    "NoiseShares",
    "Outlet",
    "SimulationSummary",
    "add_arguments",
    "build_outlets",
    "default_registry_path",
    "format_summary",
    "run",
    "simulate",
]

REGISTRY_SCHEMA = "iglu:vn.pressmeter/outlet_registry/jsonschema/1-0-0"
DEFAULT_START = dt.date(2026, 10, 1)

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# Asia/Ho_Chi_Minh is UTC+7 all year (no daylight saving time).
LOCAL_OFFSET_MS = 7 * HOUR_MS
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


@dataclass(frozen=True)
class NoiseShares:
    """How much dirt to inject; each kind is counted in the summary.

    Shares are of events (lines) unless said otherwise. Bots and empty user agents
    get ip_class `unknown`, and data-centre visits get a browser user agent, so each
    IVT rule of METRICS.md section 2 is exercised on its own.
    """

    bot_ua: float = 0.02  # events from known crawlers and scripts (GIVT-UA)
    empty_ua: float = 0.002  # events with an empty user agent (GIVT-UA)
    datacenter: float = 0.01  # human visits from a data-centre IP: VPNs, cloud browsers
    duplicate: float = 0.005  # events sent twice by a client retry (same event_id)
    late: float = 0.005  # events received 1 to 6 hours late (an app's offline queue)
    malformed: float = 0.0005  # events replaced by a broken line (rejected by ingest)
    rate_burst_every_days: int = 3  # one day in this many gets 1 or 2 SIVT-RATE devices


NOISE = NoiseShares()

# --- outlets ------------------------------------------------------------------

ZIPF_S = 1.1
CATEGORIES = ("news", "tv", "radio", "magazine")
CATEGORY_SHARES = {"news": 0.55, "tv": 0.15, "radio": 0.15, "magazine": 0.15}
# (display name, site_id stem) per category; the k-th use of a stem is `<stem><k>.vn`.
OUTLET_NAMES: dict[str, tuple[tuple[str, str], ...]] = {
    "news": (
        ("Tin Nhanh", "tinnhanh"),
        ("Thời Sự Nay", "thoisunay"),
        ("Nhịp Sống Số", "nhipsongso"),
        ("Người Việt Hôm Nay", "nguoiviet"),
        ("Sài Gòn Sáng", "saigonsang"),
        ("Hà Nội Chiều", "hanoichieu"),
        ("Miền Trung Online", "mientrung"),
        ("Kinh Tế Số", "kinhteso"),
        ("Pháp Luật Nay", "phapluatnay"),
        ("Dân Trí Mới", "dantrimoi"),
    ),
    "tv": (
        ("VTV Demo", "vtv-demo"),
        ("Truyền hình Sông Hồng", "tv-songhong"),
        ("Truyền hình Phương Nam", "tv-phuongnam"),
        ("HTV Demo", "htv-demo"),
    ),
    "radio": (
        ("Đài Phát thanh Sông", "radio-song"),
        ("VOV Demo", "vov-demo"),
        ("Đài Phát thanh Mekong", "radio-mekong"),
        ("Sóng FM Thủ Đô", "radio-thudo"),
    ),
    "magazine": (
        ("Tạp chí Đẹp", "tapchidep"),
        ("Ẩm Thực Việt", "amthucviet"),
        ("Tạp chí Xe", "tapchixe"),
        ("Gia Đình Việt", "giadinhviet"),
        ("Du Lịch Việt", "dulichviet"),
    ),
}
SECTIONS = {
    "news": (
        "thoi-su",
        "the-gioi",
        "kinh-doanh",
        "giai-tri",
        "the-thao",
        "phap-luat",
        "giao-duc",
        "suc-khoe",
        "doi-song",
        "so-hoa",
    ),
    "magazine": ("doi-song", "thoi-trang", "am-thuc", "du-lich", "lam-dep", "gia-dinh", "xe"),
    "tv": ("chuong-trinh", "tin-tuc", "giai-tri", "the-thao", "lich-phat-song"),
    "radio": ("chuong-trinh", "tin-tuc", "am-nhac", "giao-thong", "lich-phat-song"),
}
# Article titles are assembled from these, deterministically from the article number.
TITLE_SUBJECTS = (
    "Hà Nội",
    "TP.HCM",
    "Đà Nẵng",
    "Giá vàng",
    "Thị trường chứng khoán",
    "Đội tuyển Việt Nam",
    "Học sinh",
    "Nông dân miền Tây",
    "Ngân hàng",
    "Giá xăng",
    "Du khách",
    "Doanh nghiệp",
    "Bộ Y tế",
    "Người lao động",
    "Thời tiết",
)
TITLE_VERBS = (
    "tăng mạnh",
    "giảm nhẹ",
    "đón nhận tin vui",
    "chuẩn bị",
    "công bố kế hoạch",
    "khởi động",
    "mở rộng",
    "thay đổi",
    "lập kỷ lục",
    "đối mặt thách thức",
)
TITLE_TAILS = (
    "trong tuần này",
    "sau kỳ nghỉ lễ",
    "dịp cuối năm",
    "trước mùa mưa bão",
    "nhờ chính sách mới",
    "tại các thành phố lớn",
    "hôm nay",
    "giữa tháng",
    "trên toàn quốc",
    "theo khảo sát mới",
)

# --- time of day ----------------------------------------------------------------

# Relative traffic per local hour 0..23: low at night, peaks 7-9, 12 and 20-22.
HOURLY_WEIGHTS = {
    "reader": (
        1.2,
        0.7,
        0.45,
        0.4,
        0.6,
        1.5,
        3.5,
        5.5,
        6.0,
        5.0,
        4.3,
        4.8,
        5.8,
        4.6,
        3.8,
        3.7,
        3.8,
        4.0,
        4.3,
        5.0,
        6.2,
        6.5,
        5.0,
        2.8,
    ),
    # TV: stronger evening prime time.
    "tv": (
        1.5,
        0.8,
        0.5,
        0.4,
        0.5,
        1.0,
        2.5,
        3.5,
        3.6,
        3.0,
        2.8,
        3.2,
        4.5,
        4.0,
        3.0,
        2.8,
        3.0,
        3.5,
        4.5,
        6.5,
        8.0,
        8.5,
        6.5,
        3.5,
    ),
    # Radio: the morning and evening commutes.
    "radio": (
        0.8,
        0.5,
        0.4,
        0.4,
        0.8,
        2.5,
        5.5,
        7.0,
        6.5,
        5.0,
        4.0,
        4.0,
        4.5,
        4.0,
        3.5,
        3.5,
        4.5,
        6.0,
        6.0,
        4.5,
        5.0,
        5.2,
        3.0,
        1.6,
    ),
}
CURVE_OF_CATEGORY = {"news": "reader", "magazine": "reader", "tv": "tv", "radio": "radio"}

# --- devices ----------------------------------------------------------------------

DEVICE_TYPES = ("mobile", "desktop", "tablet", "tv", "other")
DEVICE_MIX = {  # weights in DEVICE_TYPES order
    "news": (66, 27, 5, 0, 2),
    "magazine": (70, 22, 6, 0, 2),
    "tv": (55, 17, 6, 20, 2),
    "radio": (72, 20, 4, 0, 4),
}
HUMAN_UAS = {
    "mobile": (
        "Mozilla/5.0 (Linux; Android 14; SM-A546E) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/129.0.6668.100 Mobile Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 13; CPH2591) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/128.0.6613.146 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 12; Redmi Note 11) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Version/4.0 Chrome/127.0.6533.103 Mobile Safari/537.36 Zalo android/12100636 "
        "ZaloTheme/light ZaloLanguage/vn",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/482.0.0.38.105;FBLC/vi_VN]",
    ),
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/129.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "coc_coc_browser/128.0.230 Chrome/122.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/129.0.0.0 Safari/537.36 Edg/129.0.0.0",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 13; SM-X200) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/129.0.0.0 Safari/537.36",
    ),
    "tv": (
        "Mozilla/5.0 (SMART-TV; LINUX; Tizen 7.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "94.0.4606.31/7.0 TV Safari/537.36",
        "Mozilla/5.0 (Web0S; Linux/SmartTV) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/87.0.4280.88 Safari/537.36 WebAppManager",
    ),
    "other": (
        "Mozilla/5.0 (PlayStation; PlayStation 5/2.26) AppleWebKit/605.1.15 (KHTML, like Gecko)",
        "Mozilla/5.0 (Mobile; Nokia 8000 4G; rv:48.0) Gecko/48.0 Firefox/48.0 KAIOS/2.5.4",
    ),
}
# Each matches a pattern of schemas/bots.txt.
BOT_UAS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; coccocbot-web/1.0; +http://help.coccoc.com/searchengine)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/129.0.0.0 Safari/537.36",
    "python-requests/2.32.3",
    "curl/8.5.0",
    "Wget/1.21.4",
    "Go-http-client/1.1",
    "Scrapy/2.11.2 (+https://scrapy.org)",
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
)
# ISO 3166-2:VN codes with a rough share of online readers.
PROVINCES = (
    ("VN-SG", 29),
    ("VN-HN", 26),
    ("VN-DN", 5),
    ("VN-HP", 5),
    ("VN-CT", 4),
    ("VN-57", 5),
    ("VN-39", 4),
    ("VN-13", 3),
    ("VN-22", 4),
    ("VN-21", 4),
    ("VN-26", 3),
    ("VN-34", 3),
    ("VN-35", 2),
    ("VN-43", 3),
)
REFERRERS = (
    ("https://www.google.com/", 34),
    ("https://www.facebook.com/", 22),
    ("https://zalo.me/", 8),
    ("https://coccoc.com/search", 6),
    ("https://baomoi.com/", 7),
    ("", 23),
)  # "" = direct: no referrer field

# --- behaviour ------------------------------------------------------------------------

PAGES_PER_VISIT = (45, 22, 13, 9, 6, 5)  # weights of 1..6 page views
HEARTBEAT_CONTINUE = 0.78  # chance of one more engagement heartbeat: about 3.5 per page
HEARTBEAT_MS = 5_000
LONG_HEARTBEAT_SHARE = 0.06  # tab was hidden and the tag flushed a larger amount
NEW_VISIT_GAP_SHARE = 0.08  # the next page comes after more than 30 min
ARTICLES_PER_DAY = 50
ARTICLE_TAIL = 350  # readers also open articles up to about a week old
BROADCAST_READ_SHARE = 0.15  # tv/radio visits that only read pages
PAGE_BEFORE_PLAY = 0.3  # tv/radio visits that land on a programme page, then play
SECOND_PLAY = 0.2
LIVE_SHARE = {"tv": 0.6, "radio": 0.75}
PLAY_MEDIAN_MS = {"tv": 6 * MINUTE_MS, "radio": 10 * MINUTE_MS}
PLAY_SIGMA = 1.1
PLAY_CAP_MS = 4 * HOUR_MS
PAUSE_SHARE = 0.03  # per heartbeat period
END_SHARE = 0.5  # plays that send `end`; the others just stop (tab closed)
RATE_BURST_PAGES = (36, 60)  # > 30 page views in one UTC minute, with room for noise
DELAY_MEAN_MS = 300  # ingest delay: 50 ms + exponential, capped at 3 s
LATE_MS = (HOUR_MS, 6 * HOUR_MS)
DUPLICATE_DELAY_MS = (200, 120_000)
MALFORMED_KINDS = (
    "not_json",
    "missing_device_id",
    "fractional_ts",
    "string_ts",
    "unknown_type",
    "ts_out_of_window",
)
# Prior guess of lines per visit, refined from what is generated (see _Planner).
PRIOR_LINES_PER_VISIT = {
    "news": 9.0,
    "magazine": 9.0,
    "tv": 18.0,
    "radio": 24.0,
    "bot": 5.0,
    "empty_ua": 5.0,
}
CHUNK_LINES = 4_096  # about 2 MB a write; orjson output holds 4 KB each until joined
GZIP_LEVEL = 1  # the benchmark writes hundreds of MB: favour speed over size


def _cumulative(weights: Sequence[float]) -> list[float]:
    """Cumulative shares ending at exactly 1.0, for `bisect_right(cum, random())`."""
    total = float(sum(weights))
    cum, acc = [], 0.0
    for w in weights:
        acc += w
        cum.append(acc / total)
    cum[-1] = 1.0
    return cum


@functools.lru_cache(maxsize=4096)
def _ascii_slug(text: str) -> str:
    """URL slug of a Vietnamese title: strip diacritics (đ too), keep [a-z0-9-]."""
    folded = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in folded if not unicodedata.combining(c)).lower()
    return "-".join("".join(c if c.isalnum() else " " for c in plain).split())


# --- the registry ----------------------------------------------------------------------


@dataclass(eq=False)
class Outlet:
    """One simulated outlet and its mutable generation state."""

    site_id: str
    name: str
    category: str
    share: float  # of all events (Zipf by popularity rank)
    channels: tuple[str, ...] = ()
    pool_size: int = 1  # returning devices: a visit picks one of these
    devices: dict[int, dict[str, str]] = field(default_factory=dict)
    articles: dict[int, dict[str, str]] = field(default_factory=dict)
    lines: list[int] = field(default_factory=lambda: [0, 0, 0])  # per planned kind, so far


def _category_counts(n: int) -> dict[str, int]:
    """Outlets per category: the shares of CATEGORY_SHARES, at least one each when n >= 4."""
    if n < len(CATEGORIES):
        return {c: int(i < n) for i, c in enumerate(CATEGORIES)}
    exact = {c: n * CATEGORY_SHARES[c] for c in CATEGORIES}
    counts = {c: max(1, int(exact[c])) for c in CATEGORIES}
    by_remainder = sorted(CATEGORIES, key=lambda c: exact[c] - int(exact[c]), reverse=True)
    while sum(counts.values()) < n:
        for c in by_remainder:
            if sum(counts.values()) < n:
                counts[c] += 1
    counts["news"] -= sum(counts.values()) - n  # only when n == 4 bumps it over
    return counts


def build_outlets(n: int, rng: Random) -> list[Outlet]:
    """N outlets in popularity order; the most popular is a news site, as in Vietnam."""
    counts = _category_counts(n)
    rest = [c for c in CATEGORIES for _ in range(counts[c])]
    rest.remove(rest[0])  # rest[0] is "news" (or the only category when n == 1)
    rng.shuffle(rest)
    order = [CATEGORIES[0], *rest]
    weights = [1.0 / (rank**ZIPF_S) for rank in range(1, n + 1)]
    total = sum(weights)
    used: dict[str, int] = defaultdict(int)
    outlets = []
    for category, weight in zip(order, weights, strict=True):
        names = OUTLET_NAMES[category]
        i = used[category]
        used[category] += 1
        display, stem = names[i % len(names)]
        k = i // len(names) + 1
        site_id = f"{stem}{k}.vn"
        channels: tuple[str, ...] = ()
        if category in ("tv", "radio"):
            prefix = "ch" if category == "tv" else "fm"
            channels = tuple(f"{stem}{k}-{prefix}{j}" for j in range(1, 2 + i % 3))
        outlets.append(Outlet(site_id, f"{display} {k}", category, weight / total, channels))
    return outlets


def write_registry(path: Path, outlets: Sequence[Outlet]) -> None:
    """The outlet registry (schemas/vn.pressmeter/outlet_registry), most popular first."""
    doc = {
        "schema": REGISTRY_SCHEMA,
        "outlets": [
            {"site_id": o.site_id, "name": o.name, "category": o.category} for o in outlets
        ],
    }
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")


# --- output ---------------------------------------------------------------------------


class _LineSink:
    """Puts lines in received_at order and writes them in large chunks.

    Lines wait in one bucket per minute of received_at. Visits are generated in
    order of their start, and an event is never received before its visit starts,
    so once a visit starting at S is due, every bucket before S's minute is final.
    """

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        # minute of received_at -> [(received_at, line)]; _Emitter appends here directly
        self.buckets: defaultdict[int, list[tuple[int, bytes]]] = defaultdict(list)
        self._next_minute: int | None = None
        self._ready: list[bytes] = []

    def flush_before(self, ms: int) -> None:
        """Release every line received before the minute of `ms`."""
        minute = ms // MINUTE_MS
        nxt = minute if self._next_minute is None else self._next_minute
        while nxt < minute:
            self._release(nxt)
            nxt += 1
        self._next_minute = nxt
        if len(self._ready) >= CHUNK_LINES:
            self._write()

    def close(self) -> None:
        for minute in sorted(self.buckets):
            self._release(minute)
        self._write()

    def _release(self, minute: int) -> None:
        bucket = self.buckets.pop(minute, None)
        if bucket:
            bucket.sort(key=itemgetter(0))  # stable: ties keep generation order
            self._ready.extend([line for _, line in bucket])

    def _write(self) -> None:
        if self._ready:
            self._ready.append(b"")
            self._stream.write(b"\n".join(self._ready))
            self._ready = []


class _Emitter:
    """Turns one event into its line(s): ids, ingest delay, duplicates, late and broken lines.

    Also counts what it wrote, by the same rules a reader of the file would apply,
    so the summary can be checked against a recount.
    """

    def __init__(self, rng: Random, sink: _LineSink, noise: NoiseShares) -> None:
        self._rng = rng
        self._buckets = sink.buckets  # appended to directly: this is the hot path
        self._late_cut = noise.late
        self._duplicate_cut = self._late_cut + noise.duplicate
        self._malformed_cut = self._duplicate_cut + noise.malformed
        self.lines = 0
        self.counts: dict[str, int] = defaultdict(int)

    def emit(
        self,
        etype: str,
        ts: int,
        base: dict[str, str],
        extra: dict[str, Any],
        noise_key: str | None = None,
    ) -> None:
        """Write one event of `etype` at `ts`; `noise_key` names the injected kind it counts as."""
        rng = self._rng
        r = rng.random()
        if r < self._late_cut:
            received = ts + LATE_MS[0] + int(rng.random() * (LATE_MS[1] - LATE_MS[0]))
        else:
            delay = int(-DELAY_MEAN_MS * math.log(1.0 - rng.random()))  # exponential
            received = ts + 50 + (delay if delay < 2_950 else 2_950)
        event = {
            "event_id": f"{rng.getrandbits(64):016x}",
            "type": etype,
            "ts": ts,
            "received_at": received,
            **base,
            **extra,
        }
        counts = self.counts
        buckets = self._buckets
        if self._duplicate_cut <= r < self._malformed_cut:
            buckets[received // MINUTE_MS].append((received, self._malform(event)))
            self.lines += 1
            counts["malformed"] += 1
            return
        buckets[received // MINUTE_MS].append((received, orjson.dumps(event)))
        copies = 1
        if r < self._late_cut:
            counts["late"] += 1
        elif r < self._duplicate_cut:
            delay = DUPLICATE_DELAY_MS[0] + int(rng.random() * DUPLICATE_DELAY_MS[1])
            event["received_at"] = received = received + delay
            buckets[received // MINUTE_MS].append((received, orjson.dumps(event)))
            counts["duplicates"] += 1
            copies = 2
        self.lines += copies
        counts[etype] += copies
        if noise_key:
            counts[noise_key] += copies

    def _malform(self, event: dict[str, Any]) -> bytes:
        """A line ingest must reject, of one of the kinds METRICS.md section 2 names."""
        kind = MALFORMED_KINDS[int(self._rng.random() * len(MALFORMED_KINDS))]
        self.counts[f"malformed:{kind}"] += 1
        if kind == "not_json":  # a truncated upload; cut at a comma to stay valid UTF-8
            line = orjson.dumps(event)
            return line[: line.index(b",", len(line) // 2)]
        if kind == "missing_device_id":
            del event["device_id"]
        elif kind == "fractional_ts":
            event["ts"] += 0.5
        elif kind == "string_ts":
            event["ts"] = str(event["ts"])
        elif kind == "unknown_type":
            event["type"] = "click"
        else:  # a device clock four days behind
            event["ts"] = event["received_at"] - 4 * DAY_MS
        return orjson.dumps(event)


# --- traffic ----------------------------------------------------------------------------


class _Traffic:
    """One method per kind of traffic. All draw from the one seeded generator."""

    def __init__(self, rng: Random, emitter: _Emitter, noise: NoiseShares) -> None:
        self._rng = rng
        self._emit = emitter.emit
        self._counts = emitter.counts
        self._datacenter = noise.datacenter
        self._device_cum = {c: _cumulative(w) for c, w in DEVICE_MIX.items()}
        self._province_cum = _cumulative([w for _, w in PROVINCES])
        self._referrer_cum = _cumulative([w for _, w in REFERRERS])
        self._pages_cum = _cumulative(PAGES_PER_VISIT)
        self.fresh_devices = 0
        self.day_number = 0  # days since 1970-01-01 of the day being generated

    # visits that the planner schedules

    def human_visit(self, outlet: Outlet, start: int) -> None:
        """A returning or new reader/viewer from the outlet's device pool."""
        rng = self._rng
        base, noise_key = self._pool_device(outlet), None
        if rng.random() < self._datacenter:
            base = {k: v for k, v in base.items() if k != "province"}
            base["ip_class"] = "datacenter"
            noise_key = "datacenter"
        if outlet.category in ("news", "magazine") or rng.random() < BROADCAST_READ_SHARE:
            self._read(outlet, base, noise_key, start)
        else:
            self._watch(outlet, base, noise_key, start)

    def bot_visit(self, outlet: Outlet, start: int) -> None:
        """A crawler or script: quick page views, no engagement, no referrer."""
        ua = BOT_UAS[int(self._rng.random() * len(BOT_UAS))]
        self._crawl(outlet, start, ua, "bots")

    def empty_ua_visit(self, outlet: Outlet, start: int) -> None:
        """A script that sends no user agent at all."""
        self._crawl(outlet, start, "", "empty_ua")

    def rate_burst(self, outlet: Outlet, start: int) -> None:
        """A device with a browser UA that fires > 30 page views in one UTC minute (SIVT-RATE).

        A fresh device, so that its other traffic cannot blur the count.
        """
        rng = self._rng
        base = self._new_device(outlet)
        self.fresh_devices += 1
        self._counts["rate_burst_devices"] += 1
        minute = start // MINUTE_MS * MINUTE_MS
        low, high = RATE_BURST_PAGES
        n = low + int(rng.random() * (high - low + 1))
        for offset in sorted(int(rng.random() * MINUTE_MS) for _ in range(n)):
            self._emit("page_view", minute + offset, base, self._article(outlet), "rate_burst")

    # building blocks

    def _read(self, outlet: Outlet, base: dict[str, str], noise_key: str | None, t: int) -> None:
        """1 to 6 page views, each followed by engagement heartbeats while the reader reads."""
        rng = self._rng
        pages = bisect_right(self._pages_cum, rng.random()) + 1
        referrer = self._external_referrer()
        for _ in range(pages):
            article = self._article(outlet)
            page = {**article, "referrer": referrer} if referrer else article
            self._emit("page_view", t, base, page, noise_key)
            t = self._engage(article, base, noise_key, t + 800 + int(rng.random() * 3_000))
            if rng.random() < NEW_VISIT_GAP_SHARE:  # back later: a new visit by the 30-min rule
                t += 31 * MINUTE_MS + int(rng.random() * 3 * HOUR_MS)
                referrer = self._external_referrer()
            else:
                t += 2_000 + int(rng.expovariate(1 / 20_000))
                referrer = article["url"]

    def _engage(
        self, article: dict[str, str], base: dict[str, str], noise_key: str | None, t: int
    ) -> int:
        """Engagement heartbeats of about 5 s each; returns the time of the last one."""
        rng = self._rng
        url, content_id = article["url"], article["content_id"]
        beats = 0
        while beats < 200 and rng.random() < HEARTBEAT_CONTINUE:
            beats += 1
            r = rng.random()
            if r < LONG_HEARTBEAT_SHARE:
                engaged = 8_000 + int(r / LONG_HEARTBEAT_SHARE * 37_000)
            else:
                engaged = HEARTBEAT_MS - 250 + int(r * 500)
            t += engaged + int(rng.random() * 3_000)
            self._emit(
                "engagement",
                t,
                base,
                {"url": url, "content_id": content_id, "engaged_ms": engaged},
                noise_key,
            )
        return t

    def _watch(self, outlet: Outlet, base: dict[str, str], noise_key: str | None, t: int) -> None:
        """A tv/radio visit: maybe a programme page first, then one or two plays."""
        rng = self._rng
        if rng.random() < PAGE_BEFORE_PLAY:
            self._emit("page_view", t, base, self._article(outlet), noise_key)
            t += 3_000 + int(rng.random() * 20_000)
        plays = 2 if rng.random() < SECOND_PLAY else 1
        for _ in range(plays):
            t = self._play(outlet, base, noise_key, t) + 5_000 + int(rng.random() * 55_000)

    def _play(self, outlet: Outlet, base: dict[str, str], noise_key: str | None, t: int) -> int:
        """start, a heartbeat every 30-60 s reporting the time played, maybe pauses, maybe end.

        Returns the time the play stopped.
        """
        rng = self._rng
        category = outlet.category
        channel = outlet.channels[int(rng.random() * len(outlet.channels))]
        play: dict[str, Any] = {
            "play_id": f"{rng.getrandbits(64):016x}",
            "media_kind": "video" if category == "tv" else "audio",
            "channel_id": channel,
        }
        if rng.random() < LIVE_SHARE[category]:
            play.update(media_id=channel, stream="live")
        else:
            episode = self.day_number * 3 - int(60 * rng.random() ** 2)
            play.update(media_id=f"{channel}-vod{episode}", stream="vod", content_id=str(episode))
        mu = math.log(PLAY_MEDIAN_MS[category])
        duration = min(int(rng.lognormvariate(mu, PLAY_SIGMA)), PLAY_CAP_MS)
        period = 30_000 + int(rng.random() * 30_000)
        self._emit("media", t, base, {**play, "action": "start", "played_ms": 0}, noise_key)
        played = 0
        while True:
            left = duration - played
            if left <= period:
                t += left
                if rng.random() < END_SHARE:
                    self._emit(
                        "media", t, base, {**play, "action": "end", "played_ms": left}, noise_key
                    )
                return t
            if rng.random() < PAUSE_SHARE:
                step = 1_000 + int(rng.random() * (period - 1_000))
                t += step
                self._emit(
                    "media", t, base, {**play, "action": "pause", "played_ms": step}, noise_key
                )
                t += 5_000 + int(rng.random() * 5 * MINUTE_MS)  # paused, then resumed
            else:
                step = period
                t += step + int(rng.random() * 800)  # a little buffering
                self._emit(
                    "media", t, base, {**play, "action": "heartbeat", "played_ms": step}, noise_key
                )
            played += step

    def _crawl(self, outlet: Outlet, t: int, ua: str, noise_key: str) -> None:
        """Page views a second or a few apart, from a device id never seen again."""
        rng = self._rng
        base = {
            "site_id": outlet.site_id,
            "device_id": f"{rng.getrandbits(64):016x}",
            "ua": ua,
            "ip_class": "unknown",
        }
        self.fresh_devices += 1
        for _ in range(1 + int(rng.random() ** 2 * 20)):
            self._emit("page_view", t, base, self._article(outlet), noise_key)
            t += 200 + int(rng.random() * 8_000)

    def _pool_device(self, outlet: Outlet) -> dict[str, str]:
        """A device of the outlet's pool, skewed to loyal readers so devices come back."""
        index = int(outlet.pool_size * self._rng.random() ** 2)
        device = outlet.devices.get(index)
        if device is None:
            device = outlet.devices[index] = self._new_device(outlet)
        return device

    def _new_device(self, outlet: Outlet) -> dict[str, str]:
        """The event fields a device carries on every event: id, UA, type, province."""
        rng = self._rng
        device_type = DEVICE_TYPES[bisect_right(self._device_cum[outlet.category], rng.random())]
        uas = HUMAN_UAS[device_type]
        return {
            "site_id": outlet.site_id,
            "device_id": f"{rng.getrandbits(64):016x}",
            "ua": uas[int(rng.random() * len(uas))],
            "ip_class": "residential",
            "device_type": device_type,
            "province": PROVINCES[bisect_right(self._province_cum, rng.random())][0],
        }

    def _article(self, outlet: Outlet) -> dict[str, str]:
        """Page fields of an article: mostly today's, some up to a week old."""
        number = (
            (self.day_number + 1) * ARTICLES_PER_DAY
            - 1
            - int(ARTICLE_TAIL * self._rng.random() ** 3)
        )
        article = outlet.articles.get(number)
        if article is None:
            article = outlet.articles[number] = _make_article(outlet, number)
        return article

    def _external_referrer(self) -> str:
        return REFERRERS[bisect_right(self._referrer_cum, self._rng.random())][0]


def _make_article(outlet: Outlet, number: int) -> dict[str, str]:
    """An article's url, title, section and content_id, derived from its number alone."""
    h = (number * 2_654_435_761 + len(outlet.site_id) * 40_503) & 0xFFFFFFFF
    title = (
        f"{TITLE_SUBJECTS[h % len(TITLE_SUBJECTS)]} "
        f"{TITLE_VERBS[(h >> 8) % len(TITLE_VERBS)]} "
        f"{TITLE_TAILS[(h >> 16) % len(TITLE_TAILS)]}"
    )
    sections = SECTIONS[outlet.category]
    section = sections[(h >> 24) % len(sections)]
    return {
        "url": f"https://{outlet.site_id}/{section}/{_ascii_slug(title)}-{number}.html",
        "title": title,
        "section": section,
        "content_id": str(number),
    }


# --- planning ---------------------------------------------------------------------------------

# Visit kinds a plan can hold; each is one method of _Traffic.
_HUMAN, _BOT, _EMPTY_UA, _RATE_BURST = range(4)
_NOISE_KIND_NAMES = {_BOT: "bot", _EMPTY_UA: "empty_ua"}


class _Planner:
    """Decides, hour by hour, how many visits of each kind every outlet gets.

    Each outlet is steered onto its Zipf share of `events_per_day`, spread over the
    day by its category's hourly curve. Humans, bots and empty-UA scripts each
    have their own slice of that target and their own line count: the visits
    planned for an hour cover the slice's shortfall, divided by the lines a visit
    of the kind has produced on average so far. (One shared count would let the
    small kinds draw again and again on a shortfall that only a human visit
    fills.) The total therefore lands close to days x events_per_day whatever
    the mix of long media plays and short reads.
    """

    def __init__(
        self, rng: Random, outlets: list[Outlet], events_per_day: int, noise: NoiseShares
    ) -> None:
        self._rng = rng
        self.outlets = outlets
        self._per_day = events_per_day
        self._kinds = (
            (_BOT, noise.bot_ua),
            (_EMPTY_UA, noise.empty_ua),
            (_HUMAN, 1.0 - noise.bot_ua - noise.empty_ua),
        )
        self._curves = {name: [0.0, *_cumulative(w)] for name, w in HOURLY_WEIGHTS.items()}
        # [lines, visits] per mean key, seeded with a prior worth 20 visits
        self._stats = {k: [v * 20, 20.0] for k, v in PRIOR_LINES_PER_VISIT.items()}
        self._burst_every = noise.rate_burst_every_days
        self.visits = 0

    @staticmethod
    def mean_key(kind: int, outlet: Outlet) -> str:
        """Visits that share a lines-per-visit average: human ones by category."""
        return outlet.category if kind == _HUMAN else _NOISE_KIND_NAMES[kind]

    def lines_per_visit(self, key: str) -> float:
        lines, visits = self._stats[key]
        return lines / visits

    def record(self, kind: int, index: int, lines: int) -> None:
        """Count a generated visit's lines against its slice, and learn its mean from it."""
        if kind == _RATE_BURST:  # bursts come on top of the planned traffic
            return
        outlet = self.outlets[index]
        outlet.lines[kind] += lines
        stats = self._stats[self.mean_key(kind, outlet)]
        stats[0] += lines
        stats[1] += 1

    def plan_hour(self, day: int, hour: int, hour_start: int) -> list[tuple[int, int, int]]:
        """Visits (start ms, kind, outlet index) of one local hour, in start order."""
        rng = self._rng
        plans = []
        for index, outlet in enumerate(self.outlets):
            curve = self._curves[CURVE_OF_CATEGORY[outlet.category]]
            target = self._per_day * outlet.share * (day + curve[hour + 1])
            for kind, share in self._kinds:
                shortfall = target * share - outlet.lines[kind]
                if shortfall <= 0:
                    continue
                # Round to nearest, so a slice ends within half a visit of its target.
                n = int(shortfall / self.lines_per_visit(self.mean_key(kind, outlet)) + 0.5)
                plans.extend(
                    (hour_start + int(rng.random() * HOUR_MS), kind, index) for _ in range(n)
                )
        plans.extend(self._rate_bursts(day, hour, hour_start))
        plans.sort()
        self.visits += len(plans)
        return plans

    def _rate_bursts(self, day: int, hour: int, hour_start: int) -> list[tuple[int, int, int]]:
        """1 or 2 burst devices at 20:00 local on every `rate_burst_every_days`-th day."""
        if self._burst_every <= 0 or day % self._burst_every or hour != 20:
            return []
        rng = self._rng
        shares = _cumulative([o.share for o in self.outlets])
        count = 1 + (rng.random() < 0.5)
        return [
            (
                hour_start + int(rng.random() * HOUR_MS),
                _RATE_BURST,
                bisect_right(shares, rng.random()),
            )
            for _ in range(count)
        ]

    def size_pools(self, days: int) -> None:
        """Device pools: about a day's visits, growing with the days so readers come back."""
        for outlet in self.outlets:
            human_share = self._kinds[-1][1]
            per_day = (
                self._per_day * outlet.share * human_share / self.lines_per_visit(outlet.category)
            )
            outlet.pool_size = math.ceil(per_day * (0.8 + 0.25 * days)) + 5


# --- entry points ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SimulationSummary:
    """What a run wrote. Every count is of lines in the events file.

    `by_type` counts the well-formed lines (duplicate copies included); the noise
    counts (`bots` .. `late`) are of well-formed lines too, so `sum(by_type) +
    malformed == events_written`.
    """

    out: Path
    registry: Path
    events_written: int
    by_type: dict[str, int]
    bots: int  # ua matches schemas/bots.txt
    empty_ua: int
    datacenter: int  # ip_class datacenter
    rate_burst_devices: int
    rate_burst_events: int  # lines of the SIVT-RATE devices
    duplicates: int  # extra copies (same site_id and event_id)
    late: int  # received at least an hour after ts
    malformed: int  # lines a reader must reject
    malformed_by_kind: dict[str, int]
    outlets_by_category: dict[str, int]
    visits: int  # planned visits (a reader back after 30 min makes more by the rule)
    devices: int  # distinct devices
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events_written / self.seconds if self.seconds > 0 else 0.0


def default_registry_path(out: Path) -> Path:
    """`<out name without .jsonl or .jsonl.gz>.outlets.json`, next to `out`."""
    name = out.name
    for suffix in (".jsonl.gz", ".jsonl"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out.with_name(f"{name}.outlets.json")


def _check_arguments(
    outlets: int, days: int, events_per_day: int, out: Path, registry: Path
) -> None:
    for name, value in (("outlets", outlets), ("days", days), ("events per day", events_per_day)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if out.resolve() == registry.resolve():
        raise ValueError(f"the registry and the events file are the same path: {out}")
    for path in (out, registry):
        if path.is_dir():
            raise ValueError(f"{path} is a directory, expected a file path")


def _open_events(path: Path, gz: bool) -> tuple[IO[bytes], IO[bytes]]:
    """The raw file and the stream to write to: gzip without name or time stamp if `gz`."""
    raw = open(path, "wb", buffering=1 << 20)  # noqa: SIM115 - closed by the caller
    if gz:
        return raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0
        )
    return raw, raw


def _generate(
    start: dt.date,
    days: int,
    planner: _Planner,
    traffic: _Traffic,
    emitter: _Emitter,
    sink: _LineSink,
    progress: Callable[[float], None] | None,
) -> None:
    """Plan each local hour, then generate its visits in start order."""
    planner.size_pools(days)
    visit_of_kind = (
        traffic.human_visit,
        traffic.bot_visit,
        traffic.empty_ua_visit,
        traffic.rate_burst,
    )
    first_day = start.toordinal() - _EPOCH_ORDINAL
    for day in range(days):
        traffic.day_number = first_day + day
        day_start = (first_day + day) * DAY_MS - LOCAL_OFFSET_MS
        for hour in range(24):
            for visit_start, kind, index in planner.plan_hour(
                day, hour, day_start + hour * HOUR_MS
            ):
                sink.flush_before(visit_start)
                before = emitter.lines
                visit_of_kind[kind](planner.outlets[index], visit_start)
                planner.record(kind, index, emitter.lines - before)
            if progress is not None:
                progress((day * 24 + hour + 1) / (days * 24))


def simulate(
    outlets: int,
    days: int,
    start: dt.date,
    out: Path,
    registry: Path,
    seed: int = 1,
    events_per_day: int = 30000,
    progress: Callable[[float], None] | None = None,
    *,
    noise: NoiseShares = NOISE,
) -> SimulationSummary:
    """Write the registry and about `days x events_per_day` events; return what was written.

    The events file is written under a temporary name and renamed when complete,
    so a file with the final name is never half written.
    """
    out, registry = Path(out), Path(registry)
    _check_arguments(outlets, days, events_per_day, out, registry)
    began = time.perf_counter()
    rng = Random(seed)
    outlet_list = build_outlets(outlets, rng)
    for path in (out, registry):
        path.parent.mkdir(parents=True, exist_ok=True)
    write_registry(registry, outlet_list)

    partial = out.with_name(out.name + ".part")
    raw, stream = _open_events(partial, gz=out.name.endswith(".gz"))
    try:
        sink = _LineSink(stream)
        emitter = _Emitter(rng, sink, noise)
        traffic = _Traffic(rng, emitter, noise)
        planner = _Planner(rng, outlet_list, events_per_day, noise)
        _generate(start, days, planner, traffic, emitter, sink, progress)
        sink.close()
        if stream is not raw:
            stream.close()
        raw.close()
        os.replace(partial, out)
    except BaseException:
        raw.close()
        partial.unlink(missing_ok=True)
        raise

    counts = emitter.counts
    categories = {c: sum(o.category == c for o in outlet_list) for c in CATEGORIES}
    return SimulationSummary(
        out=out,
        registry=registry,
        events_written=emitter.lines,
        by_type={t: counts[t] for t in ("page_view", "engagement", "media")},
        bots=counts["bots"],
        empty_ua=counts["empty_ua"],
        datacenter=counts["datacenter"],
        rate_burst_devices=counts["rate_burst_devices"],
        rate_burst_events=counts["rate_burst"],
        duplicates=counts["duplicates"],
        late=counts["late"],
        malformed=counts["malformed"],
        malformed_by_kind={k: counts[f"malformed:{k}"] for k in MALFORMED_KINDS},
        outlets_by_category=categories,
        visits=planner.visits,
        devices=sum(len(o.devices) for o in outlet_list) + traffic.fresh_devices,
        seconds=time.perf_counter() - began,
    )


def _parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `pressmeter simulate`."""
    parser.add_argument(
        "--outlets",
        type=int,
        required=True,
        metavar="N",
        help="number of outlets (about 55%% news, 15%% each tv, radio and "
        "magazine; at least one of each from 4 on)",
    )
    parser.add_argument(
        "--days",
        type=int,
        required=True,
        metavar="D",
        help="number of local days (Asia/Ho_Chi_Minh) to simulate",
    )
    parser.add_argument(
        "--start",
        type=_parse_date,
        default=DEFAULT_START,
        metavar="DATE",
        help="first local day, YYYY-MM-DD (default: %(default)s)",
    )
    parser.add_argument(
        "--events-per-day",
        type=int,
        default=30000,
        metavar="N",
        help="events per day across all outlets, noise included (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="random seed; the same arguments give byte-identical files (default: %(default)s)",
    )
    parser.add_argument(
        "--registry",
        type=Path,
        default=None,
        metavar="FILE",
        help="where to write the outlet registry JSON (default: next to --out, "
        "named <out without .jsonl/.jsonl.gz>.outlets.json)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="events file, JSON Lines; gzip-compressed when it ends with .gz",
    )


class _ProgressLine:
    """Prints `simulate: 40%` to stderr each time another tenth is done."""

    def __init__(self) -> None:
        self._shown = 0

    def __call__(self, fraction: float) -> None:
        tenth = int(fraction * 10 + 1e-9)
        if tenth > self._shown:
            self._shown = tenth
            print(f"simulate: {tenth * 10}%", file=sys.stderr, flush=True)


def format_summary(s: SimulationSummary) -> str:
    """The human-readable report `pressmeter simulate` prints when done."""

    def share(n: int) -> str:
        return f"{n:,} ({n / s.events_written:.2%})" if s.events_written else str(n)

    types = ", ".join(f"{t} {n:,}" for t, n in s.by_type.items())
    categories = ", ".join(f"{c} {n}" for c, n in s.outlets_by_category.items())
    return "\n".join(
        [
            f"simulate: wrote {s.events_written:,} events to {s.out}",
            f"  by type: {types}",
            f"  bots: {share(s.bots)}, empty UA: {share(s.empty_ua)}, "
            f"data-centre: {share(s.datacenter)}",
            f"  SIVT-RATE: {s.rate_burst_devices} devices, {s.rate_burst_events:,} events; "
            f"duplicates: {share(s.duplicates)}; late: {share(s.late)}; "
            f"malformed: {share(s.malformed)}",
            f"  outlets: {sum(s.outlets_by_category.values())} ({categories}) in {s.registry}",
            f"  visits: {s.visits:,}, devices: {s.devices:,}",
            f"  {s.seconds:.1f} s, {s.events_per_second:,.0f} events/s",
        ]
    )


def run(args: argparse.Namespace) -> int:
    """Run `pressmeter simulate`: 0 when done, 2 with a one-line error on a bad argument."""
    try:
        start = args.start if isinstance(args.start, dt.date) else _parse_date(str(args.start))
        out = Path(args.out)
        registry = Path(args.registry) if args.registry else default_registry_path(out)
        summary = simulate(
            args.outlets,
            args.days,
            start,
            out,
            registry,
            seed=args.seed,
            events_per_day=args.events_per_day,
            progress=_ProgressLine(),
        )
    except (ValueError, argparse.ArgumentTypeError) as exc:
        print(f"pressmeter simulate: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"pressmeter simulate: error: cannot write{where}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    print(format_summary(summary))
    return 0
