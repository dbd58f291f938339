"""End to end on the real Kafka: HTTP → ingest → Kafka → `pressmeter pipeline
batch --kafka` → the expected metrics (the privacy scan of everything written,
ClickHouse included, is test_ingest_privacy.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from ingest_helpers import DATACENTER, REPO, browser_post, page_view

pytestmark = pytest.mark.kafka

PRESSMETER = REPO / ".venv/bin/pressmeter"
LOCAL = dt.timezone(dt.timedelta(hours=7))


def _run(*args: str) -> str:
    done = subprocess.run([str(PRESSMETER), *args], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_http_to_kafka_to_batch_pipeline_metrics(make_ingest, tmp_path: Path):
    ingest = make_ingest()
    ts = int(time.time() * 1000) - 60_000
    day = dt.datetime.fromtimestamp(ts / 1000, LOCAL).date().isoformat()
    u = uuid.uuid4().hex[:8]
    first = [
        page_view(f"{u}-a1", ts, device_id="dev-a"),
        page_view(f"{u}-a2", ts + 20_000, device_id="dev-a"),
        {
            "event_id": f"{u}-a3",
            "type": "engagement",
            "device_id": "dev-a",
            "ts": ts + 30_000,
            "url": "https://news1.vn/a",
            "engaged_ms": 45_000,
        },  # counts as 30,000
        page_view(f"{u}-b1", ts, device_id="dev-b"),
        page_view(f"{u}-x1", ts, type="click"),  # rejected: not counted
    ]
    assert browser_post(ingest.url, first).json()["accepted"] == 4
    again = browser_post(ingest.url, [page_view(f"{u}-b1", ts, device_id="dev-b")])
    assert again.json()["accepted"] == 1  # the same event_id again: a duplicate downstream
    bot = browser_post(ingest.url, [page_view(f"{u}-c1", ts, device_id="dev-c")], ip=DATACENTER)
    assert bot.json()["accepted"] == 1  # ip_class datacenter: IVT downstream
    ingest.stop()

    store = f"chdb:{tmp_path / 'store'}"
    summary = _run(
        "pipeline",
        "batch",
        "--kafka",
        ingest.topics.bootstrap,
        "--topic",
        ingest.topics.events,
        "--rejected-topic",
        ingest.topics.rejected,
        "--group",
        f"g-{u}",
        "--store",
        store,
    )
    assert "read        6 records" in summary
    # The click the service refused is its dead letter, stored as rejected at ingest.
    assert f"at ingest   1 dead letters of {ingest.topics.rejected} stored as rejected" in summary
    refused = _run("rejects", "--format", "csv", "--store", store).splitlines()
    assert refused == [
        "day,stage,site_id,reason,rejected",
        f"{day},ingest,news1.vn,invalid_value,1",
    ]
    rows = list(csv.DictReader(io.StringIO(_run("metrics", "export", "--store", store))))
    row = {r["site_id"]: r for r in rows if r["period"] == day}["news1.vn"]
    assert int(row["pageviews"]) == 3
    assert int(row["visitors"]) == 2
    assert int(row["engaged_ms"]) == 30_000
    assert int(row["ivt_events"]) == 1
    assert int(row["duplicate_events"]) == 1
