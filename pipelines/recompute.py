"""`pipeline recompute`: the facts and breakdowns of stored events computed again
under the current lists (pm-metrics/1 §7), as a new generation, without
re-reading any input.

A recomputation is a run of the ledger like a batch (all or nothing; a kill
leaves nothing visible) whose facts phase takes every device with events on the
chosen days instead of the devices a run stored events of. The data-centre
verdict is not recomputed: it was taken at ingest, where the address was known,
and the address is not stored.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from pressmeter.errors import RunFailed
from pressmeter.pipelines.batch import BatchRequest, RunSummary, _summarize, facts_phase
from pressmeter.pipelines.incremental import FactsScope
from pressmeter.pipelines.ledger import Ledger, RunCounts, new_run_id
from pressmeter.store import COMMITTED, open_store, quote

__all__ = ["RecomputeRequest", "recompute"]


@dataclass(frozen=True)
class RecomputeRequest:
    """Which stored days to recompute (all when no bound is given)."""

    store_url: str
    zone: str
    first: dt.date | None = None
    last: dt.date | None = None
    site_id: str | None = None
    beam_args: list[str] = field(default_factory=list)

    def scope(self) -> FactsScope:
        where = [COMMITTED]
        if self.first:
            where.append(f"day >= toDate('{self.first.isoformat()}')")
        if self.last:
            where.append(f"day <= toDate('{self.last.isoformat()}')")
        if self.site_id:
            where.append(f"site_id = {quote(self.site_id)}")
        return FactsScope(" AND ".join(where), beside=False)


def recompute(request: RecomputeRequest) -> RunSummary:
    """One recomputation, all or nothing."""
    started = time.monotonic()
    if request.first and request.last and request.first > request.last:
        raise RunFailed(f"--from {request.first} is after --to {request.last}")
    store = open_store(request.store_url)
    ledger = Ledger(store, request.zone)
    summary = RunSummary(new_run_id(), abandoned=ledger.recover())
    ledger.start(summary.run_id, "recompute")
    try:
        batch = BatchRequest(request.store_url, request.zone, beam_args=request.beam_args)
        facts_phase(batch, store, summary.run_id, request.scope())
        summary.facts_seconds = time.monotonic() - started
        _summarize(store, summary)
        ledger.commit(summary.run_id, RunCounts(checksum=Ledger.combined_checksum([])))
    except BaseException as exc:
        ledger.fail(summary.run_id, f"{type(exc).__name__}: {exc}")
        raise
    summary.seconds = time.monotonic() - started
    return summary
