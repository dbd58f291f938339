"""The HTTP ingestion service in front of Kafka (issue 3): authenticates outlets'
traffic, turns it into canonical events (docs/standard.md §1) on `pm.events.v1`,
refused events onto `pm.events.rejected.v1`, and answers 2xx only once the
events are durable. See README.md in this folder."""

from pressmeter.collectors.ingest.app import build_app
from pressmeter.collectors.ingest.config import IngestConfig, load_config
from pressmeter.collectors.ingest.server import serve

__all__ = ["IngestConfig", "build_app", "load_config", "serve"]
