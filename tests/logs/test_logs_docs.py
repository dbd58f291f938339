"""The log-import example of docs/integration-broadcaster.md, run as written
(a shell in a fresh folder holding a generated access.log): it imports, counts
and exports the hand-computed play time."""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
from pathlib import Path

from hls_logs import write_log

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs/integration-broadcaster.md"


def example(name: str) -> str:
    """The fenced code block right after `<!-- example: NAME -->`."""
    found = re.search(rf"<!-- example: {name} -->\n```\w+\n(.*?)\n```", DOC.read_text(), re.S)
    assert found, f"no example {name} in {DOC}"
    return found.group(1)


def test_the_log_import_example_of_the_doc(tmp_path: Path) -> None:
    write_log(tmp_path / "access.log")
    env = {k: v for k, v in os.environ.items() if k not in ("PM_STORE", "PM_CONFIG")}
    env["PATH"] = f"{REPO / '.venv/bin'}:{env['PATH']}"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", example("hls")],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "hls.salt").read_bytes()) == 32
    csv_text = result.stdout[result.stdout.index("period,site_id") :]
    rows = {r["period"]: r for r in csv.DictReader(io.StringIO(csv_text))}
    day = rows["2024-03-05"]
    assert int(day["play_ms"]) == 480_000
    assert (int(day["media_starts"]), int(day["media_reach"])) == (5, 2)
