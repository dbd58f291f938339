"""Where Pressmeter keeps its numbers: ClickHouse, embedded (chDB) or a server.

`open_store(url)` gives a `Store`; both backends run the same SQL (the
migrations in `schemas/clickhouse`), so what is tested on one holds on the other.
"""

from pressmeter.store.base import (
    COMMITTED,
    CURRENT_FACTS,
    Store,
    StoreError,
    close_stores,
    current_device_days,
    current_devices,
    open_store,
    quote,
)

__all__ = [
    "COMMITTED",
    "CURRENT_FACTS",
    "Store",
    "StoreError",
    "close_stores",
    "current_device_days",
    "current_devices",
    "open_store",
    "quote",
]
