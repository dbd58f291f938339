"""Generated HLS access logs with hand-computed plays, for the importer tests."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

LOCAL = dt.timezone(dt.timedelta(hours=7))
SALT = b"test-salt-0123456789abcdef"
UA_PHONE = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
UA_TV = "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 SamsungBrowser/2.2 TV"
UA_DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0"
IP_A = "14.160.1.2"
IP_B = "14.160.9.9"
IP_DC = "198.51.100.7"  # schemas/datacenter_cidrs.txt: ip_class datacenter


def at(clock: str) -> dt.datetime:
    """2024-03-05 at a local (UTC+7) time HH:MM:SS."""
    return dt.datetime.fromisoformat(f"2024-03-05T{clock}").replace(tzinfo=LOCAL)


def nginx(
    ip: str, when: dt.datetime, path: str, ua: str, status: int = 200, method: str = "GET"
) -> str:
    """One line of nginx's combined format."""
    stamp = when.strftime("%d/%b/%Y:%H:%M:%S %z")
    return (
        f'{ip} - - [{stamp}] "{method} {path} HTTP/1.1" {status} 1316 "https://tv1.vn/live" "{ua}"'
    )


def segments(
    ip: str, ua: str, stream: str, first: dt.datetime, count: int, start_seq: int = 0
) -> list[tuple[dt.datetime, str]]:
    """`count` segment requests 6 s apart (the player fetches as it plays)."""
    return [
        (
            first + dt.timedelta(seconds=6 * i),
            nginx(
                ip,
                first + dt.timedelta(seconds=6 * i),
                f"/{stream}/seg_{start_seq + i:05d}.ts?token=abc",
                ua,
            ),
        )
        for i in range(count)
    ]


# What the log below holds, per client (device) — 6 s segments, gap threshold 60 s.
EXPECTED_PLAYS_MS = {
    # A on live/vtv1: 30 segments, a 45 s pause (< 60 s: same play), 10 more → 240 s;
    # then 120 s without a request (> 60 s): a new play of 5 segments → 30 s.
    # A on live/vov1 at the same time (one client, two streams): 15 segments → 90 s.
    "A": [240_000, 30_000, 90_000],
    # B on live/vtv1, overlapping A; one segment fetched twice (counted once) → 48 s
    "B": [48_000],
    # C: A's address with another user agent (another client) → 72 s
    "C": [72_000],
    # D from a data-centre address: 120 s, all of it IVT in the pipeline
    "D": [120_000],
}


def generated_log() -> list[str]:
    rows: list[tuple[dt.datetime, str]] = []
    rows += segments(IP_A, UA_PHONE, "live/vtv1", at("20:00:00"), 30)  # 20:00:00 .. 20:02:54
    rows += segments(IP_A, UA_PHONE, "live/vtv1", at("20:03:39"), 10, 30)  # gap 45 s
    rows += segments(IP_A, UA_PHONE, "live/vtv1", at("20:06:33"), 5, 40)  # gap 120 s
    rows += segments(IP_A, UA_PHONE, "live/vov1", at("20:00:03"), 15)
    b = segments(IP_B, UA_TV, "live/vtv1", at("20:01:00"), 8, 10)
    rows += [*b, b[3]]  # the 4th segment requested twice (a player retry)
    rows += segments(IP_A, UA_DESKTOP, "live/vtv1", at("20:02:00"), 12, 20)
    rows += segments(IP_DC, UA_DESKTOP, "live/vtv1", at("20:10:00"), 20, 100)
    noise = [
        nginx(IP_A, at("20:00:00"), "/live/vtv1/index.m3u8", UA_PHONE),  # playlist: skipped
        nginx(IP_B, at("20:01:00"), "/live/vtv1/seg_00099.ts", UA_TV, status=404),  # skipped
        nginx(IP_B, at("20:01:00"), "/live/vtv1/seg_00099.ts", UA_TV, method="POST"),
        "this is not an access log line",  # malformed: unparsable
        nginx(IP_A, at("20:00:00"), "/live/vtv1/seg_00001.ts", UA_PHONE).replace(
            "05/Mar/2024", "35/Zzz/2024"
        ),  # malformed: bad time
        "\x00\xff garbage \\x22",  # malformed: unparsable
    ]
    rows.sort(key=lambda r: r[0])
    lines = [line for _, line in rows]
    # noise spread through the file
    for i, line in enumerate(noise):
        lines.insert(7 * i + 3, line)
    return lines


def write_log(path: Path) -> Path:
    path.write_text("\n".join(generated_log()) + "\n", encoding="utf-8")
    return path
