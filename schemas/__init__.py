"""The single source of truth for shapes: event schemas, the bot list, the outlet
registry format and the ClickHouse migrations live here as data files.

Code loads them through this module and never retypes a field list, so a change
to the standard is a change to one file.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "EVENT_SCHEMA",
    "OUTLET_REGISTRY_SCHEMA",
    "REJECTED_EVENT_SCHEMA",
    "bot_patterns",
    "clickhouse_migrations",
    "load_schema",
]

EVENT_SCHEMA = "vn.pressmeter/event/jsonschema/1-0-0"
OUTLET_REGISTRY_SCHEMA = "vn.pressmeter/outlet_registry/jsonschema/1-0-0"
REJECTED_EVENT_SCHEMA = "vn.pressmeter/rejected_event/jsonschema/1-0-0"


def _files() -> Any:
    return resources.files(__name__)


@cache
def load_schema(ref: str) -> dict[str, Any]:
    """Load a self-describing JSON Schema by its `vendor/name/format/version` path."""
    schema: dict[str, Any] = json.loads((_files() / f"{ref}.json").read_text("utf-8"))
    return schema


@cache
def bot_patterns() -> tuple[str, ...]:
    """The GIVT-UA patterns of `bots.txt`, lower-cased, in file order."""
    text = (_files() / "bots.txt").read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    return tuple(line.lower() for line in lines if line and not line.startswith("#"))


def clickhouse_migrations() -> list[tuple[str, str]]:
    """The ClickHouse migrations as (name, SQL text), in the order they apply."""
    folder = _files() / "clickhouse"
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [(name, (folder / name).read_text("utf-8")) for name in names]
