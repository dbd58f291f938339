"""`pipeline compact`: the per-device rows that newer runs superseded, and the
working rows of committed runs, deleted.

A run that recomputes a device-day writes new device_days and device_values rows
for it; readers take each device-day's newest committed row
(`current_devices`), so the older rows are never read for a figure again, yet
every later run that sums a site-day whole passes over them. A store of
5,000,000 events stored in five runs of the same ten days held 14.4M
device_values rows of which 3.6M were current; a 100,000-event run of returning
devices took 5.96 times the same run into an empty store, and 3.63 times once
the superseded rows were gone (bench/incremental_facts.py's hard case, one core).

What is deleted is never what a figure, a provenance or a recomputation reads:
- device_days and device_values rows of a committed run whose device-day has a
  row of a newer committed run (the current row is kept, so every reader's
  figures are unchanged);
- replaced_device_days, rebuilt_sketches and devices_with_history rows of
  committed runs: a run writes and reads them only before it commits.
Events, fact generations, sketches, §8 rows, the ledger and closed months are
kept whole. The ledger's recovery runs first: compaction refuses while a run is
writing to the store, and abandons the runs that died.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pressmeter.pipelines.ledger import Ledger
from pressmeter.store import COMMITTED, Store, current_devices, open_store
from pressmeter.store.tables import (
    DEVICE_DAYS,
    DEVICE_VALUES,
    DEVICES_WITH_HISTORY,
    REBUILT_SKETCHES,
    REPLACED_DEVICE_DAYS,
)

__all__ = ["Compaction", "compact"]

log = logging.getLogger(__name__)

# Rows of committed runs a newer committed run superseded (device-day tables).
SUPERSEDED = (
    f"{COMMITTED} AND (site_id, day, device_id, run_id) NOT IN ({current_devices(COMMITTED)})"
)
# Tables a run uses only until it commits.
RUN_WORKING_TABLES = (REPLACED_DEVICE_DAYS, REBUILT_SKETCHES, DEVICES_WITH_HISTORY)


@dataclass
class Compaction:
    """Rows deleted, by table."""

    deleted: dict[str, int] = field(default_factory=dict)
    abandoned: list[str] = field(default_factory=list)

    def render(self) -> str:
        lines = [f"abandoned runs: {', '.join(self.abandoned)}"] if self.abandoned else []
        lines += [f"  {table:<22} {rows:>12,} rows deleted" for table, rows in self.deleted.items()]
        return "\n".join(["compacted the store", *lines])


def _count(store: Store, table: str, where: str) -> int:
    return int(store.rows(f"SELECT count() FROM {table} WHERE {where}")[0][0])


def compact(store_url: str, zone: str) -> Compaction:
    """Delete the superseded device rows and the committed runs' working rows."""
    store = open_store(store_url)
    result = Compaction(abandoned=Ledger(store, zone).recover())
    # device_values first: its superseded rows are found from device_days, whose
    # current rows the deletes keep, so either order leaves the same rows.
    for table in (DEVICE_VALUES, DEVICE_DAYS):
        result.deleted[table.name] = _count(store, table.name, SUPERSEDED)
        if result.deleted[table.name]:
            log.info("deleting %d superseded rows of %s", result.deleted[table.name], table.name)
            store.delete((table.name,), SUPERSEDED)
    working = [table.name for table in RUN_WORKING_TABLES]
    for name in working:
        result.deleted[name] = _count(store, name, COMMITTED)
    store.delete([name for name in working if result.deleted[name]], COMMITTED)
    return result
