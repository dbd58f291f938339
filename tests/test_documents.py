"""Operator files (pressmeter/documents.py): each failure is one ConfigError that
names the file and what is wrong, for the settings file, the ingest config and
both versions of the outlet registry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pressmeter.collectors.ingest.registry import REGISTRY_SCHEMA, load_registry
from pressmeter.config import load_settings
from pressmeter.documents import read_outlet_registry, read_toml
from pressmeter.errors import ConfigError
from pressmeter.ranking import load_outlets

SCHEMA = "iglu:vn.pressmeter/outlet_registry/jsonschema/1-0-0"


def _registry(path: Path, outlets: list[dict]) -> Path:
    path.write_text(json.dumps({"schema": SCHEMA, "outlets": outlets}), "utf-8")
    return path


NEWS = {"site_id": "news1.vn", "name": "News 1", "category": "news"}
TV = {"site_id": "tv1.vn", "name": "TV 1", "category": "tv"}


def test_toml_missing_and_malformed(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=f"^cannot read config file {missing}: No such file"):
        load_settings(str(missing), env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("store = \n", "utf-8")
    with pytest.raises(ConfigError, match=f"^ingest config {bad} is not valid TOML: "):
        read_toml(bad, "ingest config")
    good = tmp_path / "good.toml"
    good.write_text('store = "chdb:x"\n', "utf-8")
    assert read_toml(good, "config file") == {"store": "chdb:x"}


def test_registry_read_by_ranking_and_by_ingest(tmp_path: Path) -> None:
    path = _registry(
        tmp_path / "outlets.json", [NEWS, {**TV, "secret": "a-shared-secret-of-32-characters"}]
    )
    assert {k: (o.name, o.category) for k, o in load_outlets(str(path)).items()} == {
        "news1.vn": ("News 1", "news"),
        "tv1.vn": ("TV 1", "tv"),
    }
    registry = load_registry(path)
    assert [(o.site_id, o.secret) for o in registry] == [
        ("news1.vn", None),
        ("tv1.vn", b"a-shared-secret-of-32-characters"),
    ]


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "is not JSON: "),
        (
            json.dumps({"schema": SCHEMA, "outlets": [NEWS, NEWS]}),
            ": site_id news1.vn listed twice",
        ),
        (
            json.dumps({"schema": SCHEMA, "outlets": [{**NEWS, "category": "blog"}]}),
            ": at outlets/0/category: ",
        ),
        (json.dumps({"schema": SCHEMA, "sites": []}), ": at (top): "),
    ],
)
def test_registry_errors_name_the_file_and_the_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "outlets.json"
    path.write_text(content, "utf-8")
    for ref in ("vn.pressmeter/outlet_registry/jsonschema/1-0-0", REGISTRY_SCHEMA):
        with pytest.raises(ConfigError) as caught:
            read_outlet_registry(path, ref)
        message = str(caught.value)
        assert message.startswith(f"outlet registry {path}") and problem in message, message


def test_missing_registry(tmp_path: Path) -> None:
    missing = tmp_path / "none.json"
    with pytest.raises(ConfigError, match=f"^cannot read outlet registry {missing}: No such file"):
        load_outlets(str(missing))
