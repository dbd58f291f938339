"""The store's tables and their columns, described once.

The migrations in `schemas/clickhouse` create the tables; this module names the
columns code writes and reads, so an insert's or a query's column list is built
from here and never typed twice. A test holds each description to the table the
migrations create.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ADDITIVE_FIGURES",
    "CLOSED_CHANNEL_CHANGES",
    "CLOSED_CHANNEL_RANKING",
    "CLOSED_MONTHS",
    "CLOSED_MONTH_CHANGES",
    "CLOSED_MONTH_FIGURES",
    "CLOSED_MONTH_RANKING",
    "COUNTED_FIGURES",
    "DAILY_BREAKDOWNS",
    "DAILY_FACTS",
    "DAILY_SKETCHES",
    "DEVICES_WITH_HISTORY",
    "DEVICE_DAYS",
    "DEVICE_VALUES",
    "DUPLICATE_EVENTS",
    "EVENTS",
    "FACT_FIGURES",
    "FACT_GENERATIONS",
    "FACT_LISTS",
    "IVT_FIGURES",
    "KEPT_IDS",
    "MONTH_ROW_FIGURES",
    "PERIOD_FIGURES",
    "REBUILT_SKETCHES",
    "REJECTED_EVENTS",
    "REPLACED_COPIES",
    "REPLACED_DEVICE_DAYS",
    "REVISION_KEY",
    "RUNS",
    "RUN_SOURCES",
    "RUN_TABLES",
    "TABLES",
    "USER_AGENTS",
    "Table",
]


@dataclass(frozen=True)
class Table:
    """A store table: its name and the columns code writes (in insert order)."""

    name: str
    columns: tuple[str, ...]

    def without(self, *names: str) -> tuple[str, ...]:
        """The columns less `names` (say, the run_id a sink appends itself)."""
        return tuple(c for c in self.columns if c not in names)

    def list(self, *names: str) -> str:
        """The columns (less `names`) as an SQL list: `a, b, c`."""
        return ", ".join(self.without(*names))


RUNS = Table(
    "runs",
    (
        "run_id",
        "status",
        "updated_ms",
        "source_kind",
        "kafka_group",
        "metrics_version",
        "zone",
        "lines_read",
        "replayed",
        "rejected",
        "duplicates",
        "kept",
        "checksum",
        "detail",
    ),
)
RUN_SOURCES = Table(
    "run_sources",
    (
        "run_id",
        "source_index",
        "source_id",
        "name",
        "first_position",
        "last_position",
        "records",
        "bytes",
        "checksum",
    ),
)
EVENTS = Table(
    "events",
    (
        "site_id",
        "day",
        "device_id",
        "ts",
        "event_id",
        "received_at",
        "type",
        "ua_ivt",
        "ip_class",
        "value_ms",
        "action",
        "source_id",
        "position",
        "run_id",
        # 0004_event_dimensions.sql
        "section",
        "content_id",
        "channel_id",
        "stream",
        "province",
        "device_type",
        "referrer_host",
        "url_host",
        "ua_id",
    ),
)
USER_AGENTS = Table("user_agents", ("ua_id", "ua", "run_id"))
REJECTED_EVENTS = Table(
    "rejected_events",
    (
        "run_id",
        "source_id",
        "position",
        "reason",
        "detail",
        "site_id",
        "raw",
        # 0007_ingest_rejects.sql
        "stage",
        "refused_ms",
    ),
)
DUPLICATE_EVENTS = Table(
    "duplicate_events",
    ("site_id", "day", "event_id", "received_at", "source_id", "position", "kind", "run_id"),
)
# The additive figures of §3 and §8 (they sum over days, devices and values).
ADDITIVE_FIGURES = (
    "pageviews",
    "visits",
    "engaged_visits",
    "engaged_ms",
    "media_starts",
    "media_completes",
    "play_ms",
)
# ... and the counted events they are over, per device or summed.
COUNTED_FIGURES = (*ADDITIVE_FIGURES, "counted_events")
# Events removed as IVT, and by the rule that removed them (pipelines/ivt.py).
IVT_FIGURES = ("ivt_events", "ivt_ua", "ivt_datacenter", "ivt_rate")
FACT_FIGURES = (*COUNTED_FIGURES, *IVT_FIGURES)

FACT_GENERATIONS = Table("fact_generations", ("site_id", "day", "run_id"))
DAILY_FACTS = Table("daily_facts", ("site_id", "day", "run_id", "metrics_version", *FACT_FIGURES))
DEVICE_DAYS = Table(
    "device_days",
    (
        "site_id",
        "day",
        "device_id",
        "run_id",
        "counted_events",
        "play_ms",
        # 0005_device_facts.sql
        *(name for name in FACT_FIGURES if name not in ("counted_events", "play_ms")),
    ),
)
DAILY_SKETCHES = Table("daily_sketches", ("site_id", "day", "run_id", "visitors", "media_reach"))
DEVICE_VALUES = Table(
    "device_values",
    ("site_id", "day", "dimension", "value", "device_id", "run_id", *COUNTED_FIGURES),
)
DAILY_BREAKDOWNS = Table(
    "daily_breakdowns",
    (
        "site_id",
        "day",
        "run_id",
        "dimension",
        "value",
        *ADDITIVE_FIGURES,
        "visitors",
        "media_reach",
    ),
)
FACT_LISTS = Table("fact_lists", ("run_id", "list", "version"))
# 0008_kept_ids.sql: the ids dedup looks up (id_hash is computed by the store).
KEPT_IDS = Table("kept_ids", ("id_hash", "site_id", "event_id", "received_at", "run_id"))
REPLACED_COPIES = Table("replaced_copies", ("site_id", "event_id", "received_at", "run_id"))
# 0013_replaced_rows.sql: what a run's site-day sums by difference replaced and rebuilt.
REPLACED_DEVICE_DAYS = Table(
    "replaced_device_days", ("run_id", "site_id", "day", "device_id", "replaced_run")
)
# 0015_devices_with_history.sql: the devices of a run's scope with committed rows.
DEVICES_WITH_HISTORY = Table("devices_with_history", ("run_id", "site_id", "device_id"))
REBUILT_SKETCHES = Table("rebuilt_sketches", ("run_id", "site_id", "day", "dimension", "value"))

# Closed months (0011_closed_months.sql, 0012_closed_channels.sql; pressmeter/closing.py).
# The §3 figures of a period as a report shows them (`Figures` in metrics.py), and
# those of a §4 month row: with them, a frozen row is read back whole.
PERIOD_FIGURES = (
    "pageviews",
    "visits",
    "engaged_visits",
    "visitors",
    "engaged_ms",
    "media_starts",
    "media_completes",
    "play_ms",
    "media_reach",
)
MONTH_ROW_FIGURES = (*PERIOD_FIGURES, "ivt_events", "duplicate_events", "counted_events")
# What every row a close writes carries: the revision it belongs to.
REVISION_KEY = ("month", "revision", "close_id")
CLOSED_MONTHS = Table(
    "closed_months",
    (
        *REVISION_KEY,
        "closed_ms",
        "inputs_hash",
        "input_runs",
        "metrics_version",
        "list_versions",
        "zone",
        "ranked",
        # 0012_closed_channels.sql
        "channels_ranked",
    ),
)
CLOSED_MONTH_FIGURES = Table("closed_month_figures", (*REVISION_KEY, "site_id", *MONTH_ROW_FIGURES))
CLOSED_MONTH_RANKING = Table(
    "closed_month_ranking",
    (*REVISION_KEY, "category", "rank", "site_id", "name", "flagged", *MONTH_ROW_FIGURES),
)
CLOSED_MONTH_CHANGES = Table(
    "closed_month_changes", (*REVISION_KEY, "site_id", "figure", "old", "new", "delta")
)
CLOSED_CHANNEL_RANKING = Table(
    "closed_channel_ranking",
    (*REVISION_KEY, "category", "rank", "site_id", "name", "channel", *PERIOD_FIGURES),
)
CLOSED_CHANNEL_CHANGES = Table(
    "closed_channel_changes",
    (*REVISION_KEY, "site_id", "channel", "figure", "old", "new", "delta"),
)

TABLES: dict[str, Table] = {
    t.name: t
    for t in (
        RUNS,
        RUN_SOURCES,
        EVENTS,
        USER_AGENTS,
        REJECTED_EVENTS,
        DUPLICATE_EVENTS,
        FACT_GENERATIONS,
        DAILY_FACTS,
        DEVICE_DAYS,
        DAILY_SKETCHES,
        DEVICE_VALUES,
        DAILY_BREAKDOWNS,
        FACT_LISTS,
        KEPT_IDS,
        REPLACED_COPIES,
        REPLACED_DEVICE_DAYS,
        DEVICES_WITH_HISTORY,
        REBUILT_SKETCHES,
        CLOSED_MONTHS,
        CLOSED_MONTH_FIGURES,
        CLOSED_MONTH_RANKING,
        CLOSED_MONTH_CHANGES,
        CLOSED_CHANNEL_RANKING,
        CLOSED_CHANNEL_CHANGES,
    )
}
# Tables whose rows carry the run that wrote them: an abandoned run's are deleted,
# what it read (run_sources) last.
RUN_TABLES = (
    *(t for t in TABLES.values() if t not in (RUNS, RUN_SOURCES) and "run_id" in t.columns),
    RUN_SOURCES,
)
