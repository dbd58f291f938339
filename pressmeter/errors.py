"""Every error Pressmeter expects and reports as a one-line message.

    PressmeterError
    ├── ConfigError      a setting, a config file or an argument is wrong
    ├── InputError       an input cannot be read: a missing file, an unreachable Kafka
    ├── StoreError       ClickHouse (embedded or server) cannot be reached or refused
    ├── RunInProgress    another batch run is writing to the same store
    └── RunFailed        a run could not complete; nothing it wrote is counted

Anything else is a bug and surfaces with its traceback.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "InputError",
    "PressmeterError",
    "RunFailed",
    "RunInProgress",
    "StoreError",
]


class PressmeterError(Exception):
    """Base of the errors reported to the user in one line."""


class ConfigError(PressmeterError, ValueError):
    pass


class InputError(PressmeterError):
    pass


class StoreError(PressmeterError):
    pass


class RunInProgress(PressmeterError):
    pass


class RunFailed(PressmeterError):
    pass
