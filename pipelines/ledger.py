"""The run ledger: what each run read, and whether its results count.

A run's rows in every table carry its run id; only runs marked committed are
seen by readers. A run found still 'started' whose process is gone died half
way: it is marked abandoned and its rows deleted, so the next run starts clean.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass

import pyarrow as pa

from pressmeter import METRICS_VERSION
from pressmeter.errors import RunInProgress
from pressmeter.pipelines.dedup import ReadRange
from pressmeter.pipelines.sources import SourceRead
from pressmeter.store import COMMITTED, Store, quote
from pressmeter.store.tables import RUN_TABLES

__all__ = ["Ledger", "RunCounts", "new_run_id"]


@dataclass(frozen=True)
class RunCounts:
    lines_read: int = 0
    replayed: int = 0
    rejected: int = 0
    duplicates: int = 0
    kept: int = 0
    checksum: str = ""


def new_run_id() -> str:
    """Sortable by start time, which is also commit order (one run at a time)."""
    now = dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%dT%H%M%S%f}Z-{secrets.token_hex(3)}"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Ledger:
    def __init__(self, store: Store, zone: str) -> None:
        self.store = store
        self.zone = zone

    def _record(
        self,
        run_id: str,
        status: str,
        counts: RunCounts = RunCounts(),
        *,
        source_kind: str = "",
        kafka_group: str = "",
        detail: str = "",
    ) -> None:
        row = {
            "run_id": run_id,
            "status": status,
            "updated_ms": time.time_ns() // 1_000_000,
            "source_kind": source_kind,
            "kafka_group": kafka_group,
            "metrics_version": METRICS_VERSION,
            "zone": self.zone,
            "lines_read": counts.lines_read,
            "replayed": counts.replayed,
            "rejected": counts.rejected,
            "duplicates": counts.duplicates,
            "kept": counts.kept,
            "checksum": counts.checksum,
            "detail": detail,
        }
        self.store.insert("runs", pa.Table.from_pylist([row]))

    def recover(self) -> list[str]:
        """Abandon runs that died half way; refuse if one is still alive."""
        stale = self.store.rows(
            "SELECT run_id, anyIf(detail, status = 'started') FROM runs "
            "GROUP BY run_id HAVING max(status) = 'started'"
        )
        host = socket.gethostname()
        abandoned = []
        for run_id, detail in stale:
            owner = json.loads(detail or "{}")
            if owner.get("host") != host or _process_alive(int(owner.get("pid", 0))):
                raise RunInProgress(
                    f"run {run_id} of {owner.get('host')} (pid {owner.get('pid')}) is still "
                    "writing to this store; wait for it, or stop it"
                )
            self._record(run_id, "abandoned", detail="its process ended before it committed")
            for table in RUN_TABLES:
                self.store.execute(
                    f"ALTER TABLE {table.name} DELETE WHERE run_id = {quote(run_id)}"
                )
            abandoned.append(run_id)
        return abandoned

    def start(self, run_id: str, source_kind: str, kafka_group: str = "") -> None:
        owner = json.dumps({"host": socket.gethostname(), "pid": os.getpid()})
        self._record(
            run_id, "started", source_kind=source_kind, kafka_group=kafka_group, detail=owner
        )

    def commit(self, run_id: str, counts: RunCounts) -> None:
        self._record(run_id, "committed", counts)

    def fail(self, run_id: str, error: str) -> None:
        self._record(run_id, "failed", detail=error[:2000])

    def ingested_by(self, source_id: str) -> str | None:
        """The committed run that already read this source whole, if any."""
        rows = self.store.rows(
            f"SELECT run_id FROM run_sources WHERE source_id = {quote(source_id)} "
            f"AND {COMMITTED} ORDER BY run_id LIMIT 1"
        )
        return rows[0][0] if rows else None

    def kafka_next_offsets(self, topic: str, group: str) -> dict[int, int]:
        """Per partition, the offset after the last one a committed run of `group` stored."""
        prefix = f"kafka:{topic}/"
        rows = self.store.rows(
            f"SELECT source_id, max(last_position) + 1 FROM run_sources "
            f"WHERE substring(source_id, 1, {len(prefix)}) = {quote(prefix)} AND {COMMITTED} "
            f"AND run_id IN (SELECT run_id FROM runs WHERE kafka_group = {quote(group)}) "
            f"GROUP BY source_id"
        )
        return {int(source_id[len(prefix) :]): int(next_offset) for source_id, next_offset in rows}

    def read_ranges(self, source_ids: list[str]) -> list[ReadRange]:
        """The positions of these sources that committed runs read: a copy read
        from one again is a replay (pipelines/dedup.py)."""
        if not source_ids:
            return []
        names = ", ".join(quote(source_id) for source_id in source_ids)
        rows = self.store.rows(
            "SELECT source_id, first_position, last_position FROM run_sources "
            f"WHERE source_id IN ({names}) AND {COMMITTED} ORDER BY source_id, first_position"
        )
        return [ReadRange(source_id, int(first), int(last)) for source_id, first, last in rows]

    @staticmethod
    def combined_checksum(reads: list[SourceRead]) -> str:
        """One checksum of everything a run read, in source order."""
        import hashlib

        digest = hashlib.sha256()
        for read in sorted(reads, key=lambda r: (r.source_index, r.first_position)):
            digest.update(
                f"{read.source_id}:{read.first_position}-{read.last_position}:"
                f"{read.checksum}\n".encode()
            )
        return digest.hexdigest()
