"""The spool's count of live batches, which the durable sink's mode follows."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from pressmeter.collectors.ingest.spool import BatchRef, Spool


def test_a_batch_being_written_counts_as_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """While a batch is written and fsync'd in the spool's I/O thread it is no
    longer pending and not yet in a segment. Counted as neither, the durable sink
    saw an empty spool mid-write, went back to direct sends, and the next request
    of the same device reached Kafka before the spooled one
    (tests/ingest/test_ingest_durability.py: "events out of order in Kafka")."""
    spool = Spool(tmp_path / "spool", max_bytes=1 << 20, segment_bytes=1 << 16)
    writing, release = threading.Event(), threading.Event()
    write = spool._write

    def held_write(data: bytes) -> None:  # the fsync, held until the test has looked
        writing.set()
        release.wait(10)
        write(data)

    monkeypatch.setattr(spool, "_write", held_write)

    async def append_and_look() -> tuple[int, BatchRef]:
        appended = asyncio.ensure_future(spool.append([("pm.events.v1", b"key", b"value")]))
        await asyncio.get_running_loop().run_in_executor(None, writing.wait, 10)
        during = spool.live_batches
        release.set()
        return during, await appended

    during, ref = asyncio.run(append_and_look())
    assert during == 1
    assert spool.live_batches == 1
    spool.mark_done(ref)
    assert spool.live_batches == 0
    spool.close()
