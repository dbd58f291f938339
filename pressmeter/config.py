"""Settings from, in rising priority: defaults, a TOML file, the environment, the
command line. One place lists them all (`SETTINGS`), with their variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path

from pressmeter.calendar import DEFAULT_ZONE
from pressmeter.documents import read_toml
from pressmeter.errors import ConfigError

__all__ = ["ConfigError", "Settings", "load_settings"]

DEFAULT_CONFIG = "pressmeter.toml"


@dataclass(frozen=True)
class Settings:
    """Deployment settings. Each field's environment variable is PM_<NAME>."""

    store: str = "chdb:pressmeter-data"
    zone: str = DEFAULT_ZONE
    kafka: str = "127.0.0.1:19092"
    topic: str = "pm.events.v1"
    group: str = "pressmeter-batch"
    outlets: str = ""
    # §5: the ranking flags outlets whose IVT rate is above this: a fraction
    # ("0.1", "1/10") or a percentage ("10%").
    ivt_threshold: str = "10%"

    def ivt_threshold_fraction(self) -> Fraction:
        """ivt_threshold as an exact fraction in [0, 1]."""
        text = self.ivt_threshold.strip()
        try:
            value = Fraction(text[:-1]) / 100 if text.endswith("%") else Fraction(text)
        except (ValueError, ZeroDivisionError):
            value = Fraction(-1)
        if not 0 <= value <= 1:
            raise ConfigError(
                f"ivt_threshold {self.ivt_threshold!r}: give a fraction in [0, 1] or a "
                "percentage, e.g. 0.1 or 10%"
            )
        return value


def load_settings(config: str | None = None, env: dict[str, str] | None = None) -> Settings:
    """Defaults ← `config` (or $PM_CONFIG, or ./pressmeter.toml if present) ← PM_* vars."""
    env = dict(os.environ if env is None else env)
    values: dict[str, str] = {}
    path = config or env.get("PM_CONFIG")
    if path or Path(DEFAULT_CONFIG).is_file():
        path = path or DEFAULT_CONFIG
        loaded = read_toml(path, "config file")
        known = {f.name for f in fields(Settings)}
        unknown = sorted(set(loaded) - known)
        if unknown:
            raise ConfigError(
                f"config file {path}: unknown setting(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        values.update({k: str(v) for k, v in loaded.items()})
    for f in fields(Settings):
        if f"PM_{f.name.upper()}" in env:
            values[f.name] = env[f"PM_{f.name.upper()}"]
    return Settings(**values)
