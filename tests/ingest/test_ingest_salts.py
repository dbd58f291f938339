"""Cookieless device ids (issue 3, point 3): a keyed hash of site, address and user
agent with a daily salt; yesterday's salt kept to stitch visits across midnight,
older salts deleted."""

from __future__ import annotations

import stat
from pathlib import Path

from pressmeter.collectors.ingest.enrich import DAY_S, SaltStore

DAY = 20_757 * DAY_S  # 2026-10-31T00:00Z, in seconds
UA = "Mozilla/5.0 (Linux; Android 14) Chrome/126.0 Mobile"


def test_the_same_reader_on_the_same_day_keeps_one_id(tmp_path: Path) -> None:
    salts = SaltStore(tmp_path / "salts")
    first = salts.device_id("news1.vn", "203.0.113.5", UA, DAY + 100)
    assert first.startswith("c-") and len(first) == 34
    assert salts.device_id("news1.vn", "203.0.113.5", UA, DAY + 80_000) == first
    assert salts.device_id("news1.vn", "203.0.113.6", UA, DAY + 100) != first
    assert salts.device_id("news2.vn", "203.0.113.5", UA, DAY + 100) != first
    assert salts.device_id("news1.vn", "203.0.113.5", UA + " x", DAY + 100) != first
    # Another worker process sharing the folder derives the same id.
    assert SaltStore(tmp_path / "salts").device_id("news1.vn", "203.0.113.5", UA, DAY + 5) == first


def test_a_reader_seen_before_midnight_keeps_its_id_after_it(tmp_path: Path) -> None:
    salts = SaltStore(tmp_path / "salts")
    late = salts.device_id("news1.vn", "198.51.100.7", UA, DAY + DAY_S - 600)
    after_midnight = salts.device_id("news1.vn", "198.51.100.7", UA, DAY + DAY_S + 600)
    assert after_midnight == late
    # A reader first seen on the new day gets the new day's salt: a fresh salt
    # store that never saw the pair yesterday derives another id for it.
    newcomer = salts.device_id("news1.vn", "198.51.100.8", UA, DAY + DAY_S + 600)
    unstitched = SaltStore(tmp_path / "salts").device_id(
        "news1.vn", "198.51.100.7", UA, DAY + DAY_S + 600
    )
    assert unstitched != late
    assert newcomer != unstitched


def test_salts_rotate_daily_and_older_ones_are_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "salts"
    salts = SaltStore(folder)
    for day in range(3):  # a new reader each day, so no day keeps yesterday's salt
        salts.device_id("news1.vn", f"192.0.2.{day}", UA, DAY + day * DAY_S + 60)
    day0 = DAY // DAY_S
    assert sorted(p.name for p in folder.glob("*.salt")) == [
        f"{day0 + 1}.salt",
        f"{day0 + 2}.salt",
    ]
    assert all(len(p.read_bytes()) == 32 for p in folder.glob("*.salt"))
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.glob("*.salt")} == {0o600}
