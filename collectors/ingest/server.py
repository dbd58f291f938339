"""`pressmeter ingest serve`: several worker processes on one port.

Each worker is a whole service (aiohttp on asyncio, its own Kafka producer and
its own spool folder `spool/worker-N`) bound to the same address with
SO_REUSEPORT, so the kernel spreads connections across cores. The parent only
starts the workers, restarts one that dies, and on SIGTERM/SIGINT passes the
signal on: each worker stops accepting, finishes its requests, flushes its
producer (what Kafka does not take in time stays in the spool for the next
start) and exits. Workers die with the parent (PR_SET_PDEATHSIG), so a
`kill -9` of the parent leaves no worker holding the port or a spool.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ipaddress
import logging
import multiprocessing
import os
import resource
import signal
import socket
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING

from pressmeter.collectors.ingest.config import IngestConfig
from pressmeter.collectors.ingest.enrich import parse_ip
from pressmeter.collectors.ingest.scrub import LogScrub

if TYPE_CHECKING:
    from aiohttp import web

    from pressmeter.collectors.ingest.metrics import Counter as MetricCounter

__all__ = ["serve"]

log = logging.getLogger("pressmeter.ingest")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _die_with_parent() -> None:
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


# A client still sending after its answer (a 413, a 408) gets this long to stop:
# enough to read the answer, too short to hold the connection.
_LINGER_S = 2.0
_TOO_MANY_BODY = b'{"error": "too_many_connections", "detail": "too many connections from you"}'
_TOO_MANY = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\nRetry-After: 1\r\n"
    b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(_TOO_MANY_BODY), _TOO_MANY_BODY)
)


class ClientConnections:
    """Open connections per client address, at most `cap` each; trusted proxies
    are not counted."""

    def __init__(self, cap: int, trusted: list[str], refused: MetricCounter) -> None:
        self.cap = cap
        self.trusted = [ipaddress.ip_network(c, strict=False) for c in trusted]
        self.refused = refused
        self.open: Counter[str] = Counter()

    def exempt(self, peer: str) -> bool:
        address = parse_ip(peer)
        return address is not None and any(address in net for net in self.trusted)

    def take(self, peer: str) -> bool:
        """One more connection from `peer`, if it has fewer than `cap` open."""
        if self.open[peer] >= self.cap:
            self.refused.inc()
            return False
        self.open[peer] += 1
        return True

    def release(self, peer: str) -> None:
        self.open[peer] -= 1
        if self.open[peer] <= 0:
            del self.open[peer]


class _Guarded(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the per-client cap."""

    def __init__(self, inner: asyncio.Protocol, clients: ClientConnections) -> None:
        self.inner = inner
        self.clients = clients
        self.admitted = False
        self.counted: str | None = None  # the peer, when it counts against the cap

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        if not self.clients.exempt(address):
            if not self.clients.take(address):
                assert isinstance(transport, asyncio.Transport)
                transport.write(_TOO_MANY)
                transport.close()
                return
            self.counted = address
        self.admitted = True
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted is not None:
            self.clients.release(self.counted)
        if self.admitted:
            self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.admitted:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received() if self.admitted else None

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def _raise_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _run(app: web.Application, sock: socket.socket, config: IngestConfig) -> None:
    """Serve until SIGTERM/SIGINT, then stop accepting, let requests finish and
    run the app's cleanup (which flushes the producer), as `web.run_app` does."""
    from aiohttp import web

    server_config = config.server
    runner = web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=server_config.header_timeout_s,
        lingering_time=_LINGER_S,
        shutdown_timeout=server_config.shutdown_timeout_s,
    )
    await runner.setup()
    handlers = runner.server
    assert handlers is not None
    clients = ClientConnections(
        server_config.max_client_connections,
        server_config.trusted_proxies,
        app["service"].metrics.connections_refused,
    )
    loop = asyncio.get_running_loop()
    listening = await loop.create_server(
        lambda: _Guarded(handlers(), clients), sock=sock, backlog=1024
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        listening.close()
        await runner.cleanup()


def _worker(config: IngestConfig, index: int, log_level: str) -> None:
    _die_with_parent()
    logging.basicConfig(
        level=log_level,
        stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s worker-{index} %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # never log addresses
    for handler in logging.getLogger().handlers:  # nor let aiohttp write the peer on a 500
        handler.addFilter(LogScrub(keep=("pressmeter.collectors.ingest.producer",)))
    _raise_open_files_limit()
    from pressmeter.collectors.ingest.app import build_app

    try:
        import uvloop  # libuv's event loop: about a third less CPU per request here

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    app = build_app(config, index, config.server.workers)
    sock = _bind(config.server.host, config.server.port)
    asyncio.run(_run(app, sock, config))


def serve(config: IngestConfig, log_level: str = "INFO") -> int:
    """Run the workers until SIGTERM or SIGINT; returns the exit code."""
    # Bind once in the parent first: a port in use fails here, with one message.
    probe = _bind(config.server.host, config.server.port)
    context = multiprocessing.get_context("spawn")
    workers: dict[int, multiprocessing.process.BaseProcess] = {}
    stopping = False

    def start(index: int) -> None:
        proc = context.Process(
            target=_worker, args=(config, index, log_level), name=f"pm-ingest-{index}"
        )
        proc.start()
        workers[index] = proc

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for proc in workers.values():
            if proc.pid and proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for index in range(config.server.workers):
        start(index)
    probe.close()
    log.info(
        "ingest: %d workers on http://%s:%d",
        config.server.workers,
        config.server.host,
        config.server.port,
    )
    while True:
        time.sleep(0.2)
        for index, proc in list(workers.items()):
            if proc.is_alive():
                continue
            proc.join()
            if stopping:
                del workers[index]
            else:
                log.error("ingest: worker %d exited with %s; restarting", index, proc.exitcode)
                start(index)
        if stopping and not workers:
            return 0
