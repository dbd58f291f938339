"""The ingest tests' helpers (tests/ingest/ingest_helpers.py), made importable
from here, plus a relay: a tiny HTTP server in front of the real service that
refuses or drops chosen requests and forwards the others unchanged."""

from __future__ import annotations

import http.client
import http.server
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ingest"))

from ingest_helpers import (
    TV_SECRET,
    Ingest,
    Topics,
    create_topics,
    delete_topics,
    free_port,
    kafka_bootstrap,
    metrics,
    write_config,
)

__all__ = [
    "TV_SECRET",
    "Ingest",
    "Relay",
    "Topics",
    "create_topics",
    "delete_topics",
    "free_port",
    "kafka_bootstrap",
    "metrics",
    "relay",
    "write_config",
]


@dataclass
class Seen:
    path: str
    signature: str
    events: int
    answered: int  # HTTP status given, 0 for a dropped connection


@dataclass
class Relay:
    """What the relay saw; `plan(n)` says what to do with the n-th POST (0-based):
    None to forward, an int status to refuse with, "drop" to close the connection."""

    url: str
    target_port: int
    plan: Callable[[int], int | str | None]
    retry_after: str | None = "0"
    gate: threading.Event = field(default_factory=threading.Event)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextmanager
def relay(
    target_port: int,
    plan: Callable[[int], int | str | None] = lambda n: None,
    retry_after: str | None = "0",
    open_gate: bool = True,
) -> Iterator[Relay]:
    """A relay on a loopback port. With `open_gate=False` every POST waits until
    `relay.gate.set()` (a stalled ingest)."""
    import json

    state = Relay("", target_port, plan, retry_after)
    if open_gate:
        state.gate.set()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.gate.wait(60)
            with state.lock:
                index = len(state.seen)
                action = state.plan(index)
                seen = Seen(
                    self.path,
                    self.headers.get("X-PM-Signature", ""),
                    len(json.loads(body).get("events", [])),
                    0,
                )
                state.seen.append(seen)
            if action == "drop":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if isinstance(action, int):
                payload = b'{"error":"refused by the test relay"}'
                self.send_response(action)
                if state.retry_after is not None:
                    self.send_header("Retry-After", state.retry_after)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                seen.answered = action
                return
            conn = http.client.HTTPConnection("127.0.0.1", state.target_port, timeout=30)
            try:
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")
                }
                conn.request("POST", self.path, body=body, headers=headers)
                answer = conn.getresponse()
                payload = answer.read()
                seen.answered = answer.status
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.getheader("Content-Type", "text/plain"))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            finally:
                conn.close()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.gate.set()
        server.shutdown()
        server.server_close()
