"""What the tests share: an event builder, local times, JSON Lines files, the
local servers' addresses, and a runner of the real batch pipeline.

The server tests need the local stack (`deploy/local/stack start`, which
`deploy/local/test` runs). Without it they fail with a message saying so: a test
that silently skips would hide a missing install step.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from pressmeter.metrics import metric_rows
from pressmeter.pipelines.batch import BatchRequest, RunSummary, run_batch
from pressmeter.store import close_stores, open_store

ZONE = "Asia/Ho_Chi_Minh"
LOCAL = dt.timezone(dt.timedelta(hours=7))
MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
BROWSER_UA = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
_ids = itertools.count(1)


def clickhouse_url() -> str:
    url = os.environ.get("PM_CLICKHOUSE")
    if not url:
        pytest.fail(
            "PM_CLICKHOUSE is not set: start the local stack with deploy/local/stack "
            'start and export its settings (eval "$(deploy/local/stack env)")'
        )
    return url


def kafka_bootstrap() -> str:
    bootstrap = os.environ.get("PM_KAFKA")
    if not bootstrap:
        pytest.fail(
            "PM_KAFKA is not set: start the local stack with deploy/local/stack start "
            'and export its settings (eval "$(deploy/local/stack env)")'
        )
    return bootstrap


def local_ms(text: str) -> int:
    """Epoch ms of a local (UTC+7) time written `YYYY-MM-DD HH:MM[:SS[.fff]]`."""
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=LOCAL).timestamp() * 1000)


def event(
    kind: str = "page_view",
    *,
    at: int | str,
    device: str = "dev-a",
    site: str = "news1.vn",
    **fields: Any,
) -> dict[str, Any]:
    """A valid canonical event; `at` is epoch ms or a local time string."""
    ts = local_ms(at) if isinstance(at, str) else at
    base: dict[str, Any] = {
        "event_id": f"e{next(_ids)}",
        "type": kind,
        "site_id": site,
        "device_id": device,
        "ts": ts,
        "received_at": ts + 500,
        "ua": BROWSER_UA,
        "ip_class": "residential",
    }
    if kind in ("page_view", "engagement"):
        base["url"] = f"https://{site}/a"
    if kind == "engagement":
        base["engaged_ms"] = 5_000
    if kind == "media":
        base.update(media_id="live-1", play_id="p1", action="heartbeat", played_ms=30_000)
    base.update(fields)
    return base


def write_lines(path: Path, events: list[dict[str, Any] | str]) -> Path:
    """JSON Lines; a str is written as it is (for malformed lines)."""
    with path.open("wb") as out:
        for item in events:
            out.write(item.encode() if isinstance(item, str) else orjson.dumps(item))
            out.write(b"\n")
    return path


@contextlib.contextmanager
def empty_store(kind: str, folder: Path) -> Iterator[str]:
    """A new, empty store: a chDB folder ("chdb"), or a database on the local
    ClickHouse server ("server"), dropped afterwards."""
    if kind == "chdb":
        yield f"chdb:{folder / f'store-{uuid.uuid4().hex[:8]}'}"
        close_stores()
        return
    url = f"{clickhouse_url().rsplit('/', 1)[0]}/pmtest_{uuid.uuid4().hex[:12]}"
    try:
        yield url
    finally:
        close_stores()
        open_store(url, migrate=False).execute(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]}")
        close_stores()


def fresh_store(store_url: str, folder: Path) -> contextlib.AbstractContextManager[str]:
    """Another empty store of the same kind as `store_url`, for a reference run."""
    return empty_store("chdb" if store_url.startswith("chdb:") else "server", folder)


PRESSMETER = Path(__file__).resolve().parents[1] / ".venv/bin/pressmeter"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The `pressmeter` command, as an operator runs it."""
    return subprocess.run(
        [str(PRESSMETER), *args], capture_output=True, text=True, timeout=180, cwd=cwd
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed with exit code 2 and said why in exactly one line."""
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("pressmeter: error: ")
    assert result.stdout == ""
    return lines[0]


class Runner:
    """Runs batches into one store and reads its export, as a test needs."""

    def __init__(self, store_url: str, folder: Path) -> None:
        self.store_url = store_url
        self.folder = folder
        self._files = itertools.count(1)

    def batch(self, events: list[dict[str, Any] | str], **options: Any) -> RunSummary:
        path = write_lines(self.folder / f"batch{next(self._files)}.jsonl", events)
        return self.files([path], **options)

    def files(self, paths: list[Path], **options: Any) -> RunSummary:
        request = BatchRequest(
            store_url=self.store_url, zone=ZONE, inputs=[str(p) for p in paths], **options
        )
        return run_batch(request)

    def export(self, grain: str = "day") -> dict[tuple[str, str], dict[str, Any]]:
        """(period, site_id) → the export row as a dict (ama as a string)."""
        rows = metric_rows(open_store(self.store_url), grain)
        return {(r.period, r.site_id): {**vars(r), "ama": str(r.ama)} for r in rows}

    def metric(self, period: str, name: str, site: str = "news1.vn", grain: str = "day") -> Any:
        row = self.export(grain).get((period, site))
        return None if row is None else row[name]
