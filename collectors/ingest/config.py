"""The ingest service's settings: one TOML file (`ingest.example.toml` documents
every key), read with `tomllib` and checked once at start-up, so a typo fails
the start instead of a request."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from pressmeter.documents import read_toml
from pressmeter.errors import ConfigError

__all__ = ["IngestConfig", "load_config"]


@dataclass(frozen=True)
class ServerConfig:
    """[server]: where to listen and how big a request may be."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    max_body_bytes: int = 1 << 20
    max_events: int = 500
    trusted_proxies: list[str] = field(default_factory=list)
    shutdown_timeout_s: float = 10.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_client_connections: int = 64


@dataclass(frozen=True)
class KafkaConfig:
    """[kafka]: the producer (confluent-kafka, acks=all, idempotent)."""

    bootstrap: str = "127.0.0.1:19092"
    topic: str = "pm.events.v1"
    rejected_topic: str = "pm.events.rejected.v1"
    ack_timeout_ms: int = 2000
    linger_ms: int = 2
    max_in_producer: int = 200_000
    librdkafka: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SpoolConfig:
    """[spool]: the write-ahead log used while Kafka does not acknowledge."""

    dir: str = "pressmeter-ingest"
    max_bytes: int = 256 << 20
    segment_bytes: int = 16 << 20
    replay_window: int = 2000


@dataclass(frozen=True)
class LimitsConfig:
    """[limits]: token buckets, per worker process (see the README)."""

    outlet_events_per_s: float = 100_000.0
    outlet_burst: float = 200_000.0
    client_requests_per_s: float = 50.0
    client_burst: float = 200.0


@dataclass(frozen=True)
class EnrichConfig:
    """[enrich]: salts, data-centre ranges, the IP → province table."""

    salt_dir: str = ""
    datacenter_cidrs: str = ""
    geoip_csv: str = ""
    geoip_locations_csv: str = ""


@dataclass(frozen=True)
class AuthConfig:
    """[auth]: signed (server-to-server) requests."""

    max_clock_skew_s: int = 300


@dataclass(frozen=True)
class IngestConfig:
    """The whole file. Relative paths are resolved against the file's folder."""

    registry: str
    server: ServerConfig = field(default_factory=ServerConfig)
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    spool: SpoolConfig = field(default_factory=SpoolConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    enrich: EnrichConfig = field(default_factory=EnrichConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)

    @property
    def salt_dir(self) -> Path:
        return Path(self.enrich.salt_dir or Path(self.spool.dir) / "salts")


_SECTIONS = {
    "server": ServerConfig,
    "kafka": KafkaConfig,
    "spool": SpoolConfig,
    "limits": LimitsConfig,
    "enrich": EnrichConfig,
    "auth": AuthConfig,
}
_PATHS = {
    ("spool", "dir"),
    ("enrich", "salt_dir"),
    ("enrich", "datacenter_cidrs"),
    ("enrich", "geoip_csv"),
    ("enrich", "geoip_locations_csv"),
}


def _section(name: str, cls: type, values: Any, base: Path, where: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: [{name}] must be a table")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) in [{name}]: {', '.join(unknown)}; "
            f"known: {', '.join(sorted(known))}"
        )
    out = {}
    for key, value in values.items():
        spec = known[key]
        default = spec.default_factory() if spec.default is MISSING else spec.default  # type: ignore[misc]
        if type(default) is float and type(value) is int:
            value = float(value)
        if type(value) is not type(default):
            raise ConfigError(
                f"{where}: [{name}] {key} must be a {type(default).__name__}, "
                f"not {type(value).__name__}"
            )
        if (name, key) in _PATHS and value:
            value = str((base / value).resolve())
        out[key] = value
    return cls(**out)


def load_config(path: str | Path) -> IngestConfig:
    """Read and check the TOML file at `path`."""
    path = Path(path)
    data = read_toml(path, "ingest config")
    base = path.resolve().parent
    unknown = sorted(set(data) - set(_SECTIONS) - {"registry"})
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}")
    if not isinstance(data.get("registry"), str):
        raise ConfigError(f'{path}: registry = "FILE" (the outlet registry JSON) is required')
    sections = {
        name: _section(name, cls, data.get(name, {}), base, str(path))
        for name, cls in _SECTIONS.items()
    }
    config = IngestConfig(registry=str((base / data["registry"]).resolve()), **sections)
    if not 1 <= config.server.max_events <= 10_000:
        raise ConfigError(f"{path}: [server] max_events must be in 1..10000")
    if config.server.workers < 1:
        raise ConfigError(f"{path}: [server] workers must be at least 1")
    if config.server.max_client_connections < 1:
        raise ConfigError(f"{path}: [server] max_client_connections must be at least 1")
    if min(config.server.header_timeout_s, config.server.body_timeout_s) <= 0:
        raise ConfigError(f"{path}: [server] header_timeout_s and body_timeout_s must be > 0")
    if config.spool.max_bytes < config.spool.segment_bytes:
        raise ConfigError(f"{path}: [spool] max_bytes must be at least segment_bytes")
    if config.spool.replay_window < 1:
        raise ConfigError(f"{path}: [spool] replay_window must be at least 1")
    return config
