"""Who reads and watches: device types and their user agents, the bots and scripts
a collector also sees, provinces, and where visits come from (referrers).

The referrers cover every source class of the standard (docs/standard.md §8),
including the cases a classifier must get right: a missing and an empty
referrer (both `direct`), subdomains of listed engines and networks
(`m.bing.com`, `l.facebook.com`, `m.youtube.com`), and a look-alike host
(`google.com.evil.vn`, `other`). Internal referrers come from the traffic
model: the previous page of the visit, on the outlet's own host.
"""

from __future__ import annotations

__all__ = [
    "BOT_UAS",
    "DEVICE_MIX",
    "DEVICE_TYPES",
    "EXTERNAL_REFERRERS",
    "HUMAN_UAS",
    "NO_REFERRER",
    "PROVINCES",
]

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
NO_REFERRER = None  # the event carries no `referrer` field at all
# Referrers of a visit's first page, with weights: (referrer, weight).
EXTERNAL_REFERRERS: tuple[tuple[str | None, float], ...] = (
    # direct: typed, bookmarked, an app's own browser
    (NO_REFERRER, 20),
    ("", 3),
    # search
    ("https://www.google.com/", 21),
    ("https://www.google.com.vn/", 6),
    ("https://coccoc.com/search?query=tin+t%E1%BB%A9c", 5),
    ("https://m.bing.com/", 1.5),
    ("https://www.bing.com/", 1),
    ("https://duckduckgo.com/", 0.5),
    ("https://search.yahoo.com/", 0.5),
    # social
    ("https://l.facebook.com/", 12),
    ("https://m.facebook.com/", 6),
    ("https://zalo.me/", 8),
    ("https://m.youtube.com/", 2),
    ("https://www.tiktok.com/", 2),
    ("https://t.co/", 0.5),
    # other: aggregators, app referrers without a web host, look-alikes
    ("https://baomoi.com/", 7),
    ("android-app://com.zing.zalo/", 1),
    ("https://google.com.evil.vn/", 0.3),
    ("https://facebook.com.vn-tin.net/", 0.2),
)
