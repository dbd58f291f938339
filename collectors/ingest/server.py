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
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time

from pressmeter.collectors.ingest.config import IngestConfig
from pressmeter.collectors.ingest.scrub import LogScrub

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
    from aiohttp import web

    from pressmeter.collectors.ingest.app import build_app

    try:
        import uvloop  # libuv's event loop: about a third less CPU per request here

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    app = build_app(config, index, config.server.workers)
    sock = _bind(config.server.host, config.server.port)
    web.run_app(
        app,
        sock=sock,
        access_log=None,
        shutdown_timeout=config.server.shutdown_timeout_s,
        handle_signals=True,
        print=None,
    )


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
