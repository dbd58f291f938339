"""One real ingest service (own Kafka topics) for the SDK tests, started as
`pressmeter ingest serve` runs it, on a loopback port (tests/ingest's helpers)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from ingest_service import Ingest, create_topics, delete_topics, free_port, kafka_bootstrap
from ingest_service import write_config as write_ingest_config


@pytest.fixture(scope="session")
def sdk_ingest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingest]:
    made = create_topics(kafka_bootstrap())
    folder = tmp_path_factory.mktemp("sdk-ingest")
    port = free_port()
    ingest = Ingest(write_ingest_config(folder, port, made), port, folder, made)
    ingest.start()
    yield ingest
    if ingest.proc is not None:
        ingest.stop()
    delete_topics(made)
