"""The Kafka producer: confluent-kafka (librdkafka) with acks=all and
idempotence, and an asyncio face.

Why not kafka-python, the client of the project's tests and tooling: measured on this
machine it produces about 14,000 messages/s on one core, below the ingest
target; librdkafka does the batching and the network in C threads, as it does
for the batch pipeline's consumer (pipelines/kafka_slices.py).

A `Ticket` is one request's messages: it resolves when Kafka acknowledged all
of them (acks=all) or one failed. Delivery reports are served by a poller
thread and handed to the loop with `call_soon_threadsafe`, one hand-over per
ticket, not per message. `message.timeout.ms` is 0 (never give up): with
idempotence, librdkafka retries a message until the broker has it exactly once,
however long Kafka is away, so a message handed over is never doubled by us.

Whether Kafka is reachable (`brokers_down`, what /healthz reports and what
sends a request straight to the spool) follows librdkafka's own view of its
broker connections: down at once on its "all brokers down" error, and then,
every `HEALTH_INTERVAL_MS`, from its statistics: up while a broker connection
is in state UP, down otherwise. A broker that stops (or dies: the kernel closes
its sockets) is thus reported down within about one interval, and up again
within one interval of librdkafka reconnecting, with or without traffic.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from confluent_kafka import KafkaError, Producer

from pressmeter.collectors.ingest.spool import Message

__all__ = ["HEALTH_INTERVAL_MS", "KafkaSender", "Ticket"]

log = logging.getLogger(__name__)
HEALTH_INTERVAL_MS = 1000  # librdkafka statistics: how often the broker states are read
# Errors that only say a broker connection failed: the state change is logged once.
_CONNECTION_ERRORS = (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT)


class Ticket:
    """The delivery of one batch of messages."""

    __slots__ = ("_left", "_loop", "_timer", "error", "finished", "future", "on_done")

    def __init__(self, loop: asyncio.AbstractEventLoop, count: int) -> None:
        self._loop = loop
        self._left = count
        self._timer: asyncio.TimerHandle | None = None
        self.error: str | None = None
        self.finished = False
        # Resolves True when Kafka acknowledged every message, False when one
        # failed or the deadline of `wait` passed first (`finished` tells which).
        self.future: asyncio.Future[bool] = loop.create_future()
        self.on_done: Callable[[Ticket], None] | None = None

    def wait(self, timeout_s: float) -> asyncio.Future[bool]:
        """The future, resolved False after `timeout_s` if Kafka has not answered:
        a timer rather than `asyncio.wait_for`, which costs a task per request."""
        if not self.future.done():
            self._timer = self._loop.call_later(timeout_s, self._expire)
        return self.future

    def _expire(self) -> None:
        if not self.future.done():
            self.future.set_result(False)

    def _report(self, err: KafkaError | None, _msg: Any) -> None:
        # Runs on the poller thread, one message at a time.
        if err is not None and self.error is None:
            self.error = str(err)
        self._left -= 1
        if self._left == 0:
            self._loop.call_soon_threadsafe(self._finish)

    def _finish(self) -> None:
        self.finished = True
        if self._timer is not None:
            self._timer.cancel()
        if not self.future.done():
            self.future.set_result(self.error is None)
        if self.on_done is not None:
            self.on_done(self)


class KafkaSender:
    """Sends message batches; knows whether Kafka is reachable."""

    def __init__(
        self,
        bootstrap: str,
        linger_ms: int,
        max_in_producer: int,
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.max_in_producer = max_in_producer
        self.brokers_down = False
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": 0,
            "linger.ms": linger_ms,
            "queue.buffering.max.messages": max_in_producer + 10_000,
            "partitioner": "murmur2_random",  # the Java client's: same key, same partition
            "reconnect.backoff.max.ms": 1000,
            "error_cb": self._on_error,
            "statistics.interval.ms": HEALTH_INTERVAL_MS,
            "stats_cb": self._on_stats,
            "log_level": 3,
        }
        config.update(extra or {})
        self._producer = Producer(config)
        self._stop = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-poll", daemon=True)
        self._poller.start()

    # The callbacks below run on the poller thread, inside `poll()`.

    def _on_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._ALL_BROKERS_DOWN:
            self._set_down(True)
        elif err.fatal():
            log.error("kafka producer: fatal error: %s", err)
        elif err.code() not in _CONNECTION_ERRORS:
            log.warning("kafka producer: %s", err)

    def _on_stats(self, text: str) -> None:
        brokers = orjson.loads(text).get("brokers", {}).values()
        self._set_down(not any(broker.get("state") == "UP" for broker in brokers))

    def _set_down(self, down: bool) -> None:
        if down != self.brokers_down:
            log.warning("kafka: %s", "no broker reachable" if down else "a broker is back")
        self.brokers_down = down

    def _poll(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    def has_room(self, count: int) -> bool:
        return len(self._producer) + count <= self.max_in_producer

    @property
    def in_flight(self) -> int:
        return len(self._producer)

    def send(self, messages: list[Message]) -> Ticket:
        """Hand `messages` over (the caller checked `has_room`)."""
        ticket = Ticket(asyncio.get_running_loop(), len(messages))
        produce, report = self._producer.produce, ticket._report
        for topic, key, value in messages:
            while True:
                try:
                    produce(topic, value, key, on_delivery=report)
                    break
                except BufferError:  # a burst above has_room's margin: let it drain
                    time.sleep(0.005)
        return ticket

    def close(self, timeout_s: float) -> int:
        """Flush what is queued; returns how many messages are left undelivered."""
        left = self._producer.flush(timeout_s)
        self._stop.set()
        self._poller.join(timeout=1)
        return left
