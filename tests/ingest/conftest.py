"""Fixtures of the ingest tests: private topics on the real Kafka broker and the
real service, started as `pressmeter ingest serve` would be, on a loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ingest_helpers import (
    Ingest,
    Topics,
    create_topics,
    delete_topics,
    free_port,
    kafka_bootstrap,
    write_config,
)


@pytest.fixture
def topics() -> Iterator[Topics]:
    made = create_topics(kafka_bootstrap())
    yield made
    delete_topics(made)


@pytest.fixture
def make_ingest(tmp_path: Path, topics: Topics) -> Iterator[Any]:
    """A factory: make_ingest(**sections) starts a service on the test's topics."""
    started: list[Ingest] = []

    def make(topics_: Topics | None = None, start: bool = True, **sections: Any) -> Ingest:
        used = topics_ or topics
        folder = tmp_path / f"ingest{len(started)}"
        folder.mkdir()
        port = free_port()
        ingest = Ingest(write_config(folder, port, used, **sections), port, folder, used)
        started.append(ingest)
        if start:
            ingest.start()
        return ingest

    yield make
    for ingest in started:
        if ingest.proc is not None:
            ingest.kill9()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ingest]:
    """One service for a whole module of request-level tests (own topics)."""
    made = create_topics(kafka_bootstrap())
    folder = tmp_path_factory.mktemp("ingest")
    port = free_port()
    ingest = Ingest(
        write_config(folder, port, made, server={"max_events": 500, "max_body_bytes": 1 << 20}),
        port,
        folder,
        made,
    )
    ingest.start()
    yield ingest
    if ingest.proc is not None:
        ingest.stop()
    delete_topics(made)
