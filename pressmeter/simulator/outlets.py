"""The simulated press market: which outlets there are, their popularity, channels,
sections and articles.

An outlet's registry entry is the one `pressmeter.ranking.Outlet` that the
ranking reads back with `load_outlets`; the simulator only adds the state it
needs while generating (popularity share, channels, its readers, its articles).
"""

from __future__ import annotations

import functools
import unicodedata
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from random import Random

import orjson

from pressmeter.ranking import Outlet

__all__ = [
    "CATEGORIES",
    "REGISTRY_SCHEMA",
    "SimulatedOutlet",
    "build_outlets",
    "make_article",
    "write_registry",
]

REGISTRY_SCHEMA = "iglu:vn.pressmeter/outlet_registry/jsonschema/1-0-0"
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
# Sections as the sites name them in their pages (the web tag reads `article:section`),
# so they hold diacritics, spaces and sometimes a comma; the URL path is their slug.
SECTIONS = {
    "news": (
        "Thời sự",
        "Thế giới",
        "Kinh doanh, Tài chính",
        "Giải trí",
        "Thể thao",
        "Pháp luật",
        "Giáo dục",
        "Sức khỏe",
        "Đời sống",
        "Số hóa",
    ),
    "magazine": (
        "Đời sống",
        "Thời trang",
        "Ẩm thực",
        "Du lịch",
        "Làm đẹp",
        "Gia đình, Con cái",
        "Xe",
    ),
    "tv": ("Chương trình", "Tin tức", "Giải trí", "Thể thao", "Lịch phát sóng"),
    "radio": ("Chương trình", "Tin tức", "Âm nhạc", "Giao thông", "Lịch phát sóng"),
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
# Every third outlet serves its pages on `www.`, so internal referrers come both ways.
WWW_EVERY = 3


@dataclass(eq=False)
class SimulatedOutlet:
    """One registered outlet and its mutable generation state."""

    registered: Outlet
    share: float  # of all events (Zipf by popularity rank)
    host: str  # where its pages are served: the site_id, or www. and the site_id
    channels: tuple[str, ...] = ()
    pool_size: int = 1  # returning devices: a visit picks one of these
    devices: dict[int, dict[str, str]] = field(default_factory=dict)
    articles: dict[int, dict[str, str]] = field(default_factory=dict)
    lines: list[int] = field(default_factory=lambda: [0, 0, 0])  # per planned kind, so far

    @property
    def site_id(self) -> str:
        return self.registered.site_id

    @property
    def category(self) -> str:
        return self.registered.category


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


def _channels(category: str, stem: str, k: int, i: int) -> tuple[str, ...]:
    """One to three channels for a broadcaster (`<stem><k>-ch1`, `-fm1` ...), none otherwise."""
    if category not in ("tv", "radio"):
        return ()
    prefix = "ch" if category == "tv" else "fm"
    return tuple(f"{stem}{k}-{prefix}{j}" for j in range(1, 2 + i % 3))


def build_outlets(n: int, rng: Random) -> list[SimulatedOutlet]:
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
    for rank, (category, weight) in enumerate(zip(order, weights, strict=True)):
        names = OUTLET_NAMES[category]
        i = used[category]
        used[category] += 1
        display, stem = names[i % len(names)]
        k = i // len(names) + 1
        site_id = f"{stem}{k}.vn"
        outlets.append(
            SimulatedOutlet(
                Outlet(site_id, f"{display} {k}", category),
                weight / total,
                f"www.{site_id}" if rank % WWW_EVERY == WWW_EVERY - 1 else site_id,
                _channels(category, stem, k, i),
            )
        )
    return outlets


def write_registry(path: Path, outlets: Sequence[SimulatedOutlet]) -> None:
    """The outlet registry (schemas/vn.pressmeter/outlet_registry), most popular first."""
    doc = {"schema": REGISTRY_SCHEMA, "outlets": [asdict(o.registered) for o in outlets]}
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2) + b"\n")


@functools.lru_cache(maxsize=4096)
def _ascii_slug(text: str) -> str:
    """URL slug of a Vietnamese text: strip diacritics (đ too), keep [a-z0-9-]."""
    folded = unicodedata.normalize("NFD", text.replace("đ", "d").replace("Đ", "D"))
    plain = "".join(c for c in folded if not unicodedata.combining(c)).lower()
    return "-".join("".join(c if c.isalnum() else " " for c in plain).split())


def make_article(outlet: SimulatedOutlet, number: int) -> dict[str, str]:
    """An article's url, title, section and content_id, derived from its number alone."""
    h = (number * 2_654_435_761 + len(outlet.site_id) * 40_503) & 0xFFFFFFFF
    title = (
        f"{TITLE_SUBJECTS[h % len(TITLE_SUBJECTS)]} "
        f"{TITLE_VERBS[(h >> 8) % len(TITLE_VERBS)]} "
        f"{TITLE_TAILS[(h >> 16) % len(TITLE_TAILS)]}"
    )
    sections = SECTIONS[outlet.category]
    section = sections[(h >> 24) % len(sections)]
    path = f"{_ascii_slug(section)}/{_ascii_slug(title)}-{number}.html"
    return {
        "url": f"https://{outlet.host}/{path}",
        "title": title,
        "section": section,
        "content_id": str(number),
    }
