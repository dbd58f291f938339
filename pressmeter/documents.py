"""Files operators hand to Pressmeter (settings, the outlet registry): read,
parsed and checked in one place, so every such file fails the same way, with
one line naming the file and what is wrong in it."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from pressmeter import schemas
from pressmeter.errors import ConfigError

__all__ = ["read_outlet_registry", "read_toml"]


def _text(path: str | Path, what: str) -> str:
    try:
        return Path(path).read_text("utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


def read_toml(path: str | Path, what: str) -> dict[str, Any]:
    """The TOML file at `path`; `what` names it in errors ("config file")."""
    try:
        return tomllib.loads(_text(path, what))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from exc


def read_outlet_registry(path: str | Path, ref: str) -> list[dict[str, Any]]:
    """The outlets of the registry file at `path`, checked against the schema
    `ref` (a version of the outlet registry format), each site_id once."""
    import jsonschema  # here, not at the top: `pipeline batch` reads no registry

    what = "outlet registry"
    try:
        document = json.loads(_text(path, what))
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what} {path} is not JSON: {exc}") from exc
    validator = jsonschema.Draft202012Validator(schemas.load_schema(ref))
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise ConfigError(f"{what} {path}: at {where}: {error.message}")
    seen: set[str] = set()
    for entry in document["outlets"]:
        if entry["site_id"] in seen:
            raise ConfigError(f"{what} {path}: site_id {entry['site_id']} listed twice")
        seen.add(entry["site_id"])
    outlets: list[dict[str, Any]] = document["outlets"]
    return outlets
