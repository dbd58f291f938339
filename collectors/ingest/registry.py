"""The outlet registry as the ingest service needs it: per site_id, how to
authenticate its traffic (origins and public key for browsers, a secret for
signed server-to-server requests).

The file is checked against the registry schema version 1-1-0 in `schemas/`;
it stays a valid 1-0-0 file, which `pressmeter ranking` reads.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pressmeter.documents import read_outlet_registry
from pressmeter.errors import ConfigError

__all__ = ["REGISTRY_SCHEMA", "Outlet", "Registry", "load_registry"]

REGISTRY_SCHEMA = "vn.pressmeter/outlet_registry/jsonschema/1-1-0"


@dataclass(frozen=True)
class Outlet:
    """One registered outlet; `secret` is bytes, ready for HMAC, or None."""

    site_id: str
    name: str
    category: str
    allowed_origins: frozenset[str]
    public_key: str | None
    secret: bytes | None


class Registry:
    """Outlets by site_id."""

    def __init__(self, outlets: list[Outlet]) -> None:
        self._by_site = {outlet.site_id: outlet for outlet in outlets}

    def get(self, site_id: str) -> Outlet | None:
        return self._by_site.get(site_id)

    def __iter__(self) -> Iterator[Outlet]:
        return iter(self._by_site.values())

    def __len__(self) -> int:
        return len(self._by_site)


def _secret(entry: dict[str, Any], base: Path, where: str) -> bytes | None:
    if "secret" in entry:
        return str(entry["secret"]).encode()
    ref = entry.get("secret_ref")
    if ref is None:
        return None
    kind, _, name = ref.partition(":")
    if kind == "env":
        value = os.environ.get(name)
        if not value:
            raise ConfigError(f"{where}: {entry['site_id']}: secret_ref {ref}: variable not set")
        return value.encode()
    try:
        return (base / name).read_text("utf-8").strip().encode()
    except OSError as exc:
        raise ConfigError(f"{where}: {entry['site_id']}: secret_ref {ref}: {exc.strerror}") from exc


def load_registry(path: str | Path) -> Registry:
    """Read, check against schema 1-1-0, and resolve the secrets of the registry."""
    path = Path(path)
    outlets = [
        Outlet(
            site_id=entry["site_id"],
            name=entry["name"],
            category=entry["category"],
            allowed_origins=frozenset(entry.get("allowed_origins", ())),
            public_key=entry.get("public_key"),
            secret=_secret(entry, path.parent, str(path)),
        )
        for entry in read_outlet_registry(path, REGISTRY_SCHEMA)
    ]
    return Registry(outlets)
