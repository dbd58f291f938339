"""The single source of truth for shapes: event schemas, the bot list, the outlet
registry format, the referrer lists and the ClickHouse migrations live here as data files.

Code loads them through this module and never retypes a field list, so a change
to the standard is a change to one file.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = [
    "EVENT_SCHEMA",
    "LISTS",
    "OUTLET_REGISTRY_SCHEMA",
    "REJECTED_EVENT_SCHEMA",
    "bot_patterns",
    "clickhouse_migrations",
    "list_entries",
    "list_version",
    "list_versions",
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


# The lists the facts step applies (so a recomputation applies them anew); the
# data-centre ranges are applied at ingest, where the address is known.
LISTS = ("bots", "search", "social")


@cache
def list_entries(name: str) -> tuple[str, ...]:
    """The entries of the list `name.txt`, lower-cased, in file order (no comments)."""
    text = (_files() / f"{name}.txt").read_text("utf-8")
    lines = (line.strip() for line in text.splitlines())
    return tuple(line.lower() for line in lines if line and not line.startswith("#"))


def list_version(name: str) -> str:
    """A list's version: the first 12 hex digits of the SHA-256 of its entries."""
    digest = hashlib.sha256("\n".join(list_entries(name)).encode())
    return digest.hexdigest()[:12]


def list_versions() -> dict[str, str]:
    """Each list the facts step applies (§7: changing one changes figures), by version."""
    return {name: list_version(name) for name in LISTS}


def bot_patterns() -> tuple[str, ...]:
    """The GIVT-UA patterns of `bots.txt`, lower-cased, in file order."""
    return list_entries("bots")


def clickhouse_migrations() -> list[tuple[str, str]]:
    """The ClickHouse migrations as (name, SQL text), in the order they apply."""
    folder = _files() / "clickhouse"
    names = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    return [(name, (folder / name).read_text("utf-8")) for name in names]
