"""A ClickHouse server of a test's own, to stop and start under a running batch:
the same Debian binary and config template as `deploy/local/stack`, on free
loopback ports, with its data in a temp folder."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "deploy/local/clickhouse"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivateClickHouse:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port, self.http_port = _free_port(), _free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.binary = shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server"
        (folder / "etc").mkdir(parents=True)
        text = (TEMPLATE / "config.xml").read_text()
        for key, value in {
            "HOST": "127.0.0.1",
            "CH_TCP_PORT": self.port,
            "CH_HTTP_PORT": self.http_port,
            "CH_DATA_DIR": folder / "data",
            "CH_LOG_DIR": folder / "logs",
        }.items():
            text = text.replace(f"@{key}@", str(value))
        (folder / "etc/config.xml").write_text(text)
        shutil.copy(TEMPLATE / "users.xml", folder / "etc/users.xml")

    def url(self, database: str) -> str:
        return f"clickhouse://127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 60) -> None:
        log = open(self.folder / "stdout.log", "ab")  # noqa: SIM115 - the server's
        self.proc = subprocess.Popen(
            [self.binary, f"--config-file={self.folder / 'etc/config.xml'}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probe = subprocess.run(
                [
                    "clickhouse-client",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--query",
                    "SELECT 1",
                ],
                capture_output=True,
            )
            if probe.returncode == 0:
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"private ClickHouse exited: see {self.folder}/logs")
            time.sleep(0.2)
        raise AssertionError(f"private ClickHouse did not start in {timeout} s")

    def stop(self) -> None:
        """A clean stop (SIGTERM), as a restart for an upgrade does it."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
            self.proc = None
