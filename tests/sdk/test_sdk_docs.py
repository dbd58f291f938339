"""The SDK example of docs/integration-broadcaster.md, run as written against
the real ingest service: its events land in Kafka."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from ingest_service import TV_SECRET, Ingest

DOC = Path(__file__).resolve().parents[2] / "docs/integration-broadcaster.md"


def example(name: str) -> str:
    """The fenced code block right after `<!-- example: NAME -->`."""
    found = re.search(rf"<!-- example: {name} -->\n```\w+\n(.*?)\n```", DOC.read_text(), re.S)
    assert found, f"no example {name} in {DOC}"
    return found.group(1)


def test_the_sdk_example_of_the_doc_sends_its_events(sdk_ingest: Ingest, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(example("sdk"))
    env = {**os.environ, "PM_INGEST_URL": sdk_ingest.url, "PM_SITE": "tv1.vn"}
    env["PM_SECRET"] = TV_SECRET.decode()
    result = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env
    )
    assert result.returncode == 0, result.stderr
    assert "accepted=5" in result.stdout and "not delivered" not in result.stdout
    mine = [v for _, v, _ in sdk_ingest.events() if v.get("device_id") == "stb-0042"]
    assert sorted(e.get("action", e["type"]) for e in mine) == [
        "end",
        "heartbeat",
        "page_view",
        "pause",
        "start",
    ]
    media = [e for e in mine if e["type"] == "media"]
    assert sum(e["played_ms"] for e in media) == 90_000
    assert {e["channel_id"] for e in media} == {"vtv1"}
    assert all(e["province"] == "VN-HN" and "ip" not in e for e in mine)
