"""A private, throw-away Kafka broker for the test that stops Kafka under load:
the local stack's broker is shared by other tests, so this one is started from
the same jars (.cache/kafka-libs) and the same config template as
`deploy/local/stack`, on other loopback ports, with its data in a temp folder."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from ingest_helpers import REPO, free_port
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

LIBS = REPO / ".cache/kafka-libs"
TEMPLATE = REPO / "deploy/local/kafka/server.properties"


def _cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding, as Kafka's Uuid makes them."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class PrivateKafka:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port, self.controller = free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.java = shutil.which("java") or "java"
        (folder / "data").mkdir(parents=True)
        text = TEMPLATE.read_text()
        for key, value in {
            "HOST": "127.0.0.1",
            "KAFKA_PORT": self.port,
            "KAFKA_CONTROLLER_PORT": self.controller,
            "KAFKA_DATA_DIR": folder / "data",
        }.items():
            text = text.replace(f"@{key}@", str(value))
        (folder / "server.properties").write_text(text)
        subprocess.run(
            [
                self.java,
                "-Xmx256m",
                "-cp",
                f"{LIBS}/*",
                "kafka.tools.StorageTool",
                "format",
                "--cluster-id",
                _cluster_id(),
                "--config",
                str(folder / "server.properties"),
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 90) -> None:
        log = open(self.folder / "stdout.log", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                self.java,
                "-Xms128m",
                "-Xmx384m",
                f"-Dkafka.logs.dir={self.folder}/logs",
                f"-Dlog4j2.configurationFile={REPO}/deploy/local/kafka/log4j2.xml",
                "-cp",
                f"{LIBS}/*",
                "kafka.Kafka",
                str(self.folder / "server.properties"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                # The port first: an admin client's own reconnect backoff grows to
                # tens of seconds while nothing listens.
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                admin = KafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
                admin.list_topics()
                admin.close()
                return
            except (KafkaError, OSError, ValueError):
                time.sleep(0.2)
        raise AssertionError(f"private Kafka did not start in {timeout} s")

    def stop(self) -> None:
        """A clean stop (SIGTERM), as an operator or a rolling restart does it."""
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=60)
            self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
            self.proc = None
