"""What a 2xx answer promises: the request's messages are in Kafka (acks=all),
or in the fsync'd spool and will be sent, in order, once Kafka is back.

Two modes:
- direct: hand the messages to the producer and wait up to `ack_timeout` for
  Kafka's acknowledgement. Acknowledged: answer. Not in time: spool them (the
  producer keeps trying too; whichever copy Kafka acknowledges first marks the
  batch done, and a batch still in the producer is never handed over again) and
  switch to spooling.
- spooling: write each request to the spool and answer at once; a replayer
  hands spooled batches to the producer in spool order, and marks them done as
  Kafka acknowledges them. When nothing is left unacknowledged, back to direct.
  Kafka known to be down (`KafkaSender.brokers_down`) means spooling at once,
  without waiting `ack_timeout` first.

New requests keep going to the spool while older spooled ones wait, so events
reach Kafka in the order they were answered. After a crash, the batches the
spool holds undone are handed over again, and those are the only copies a
crash can make: the spooled batches that were in the producer, handed over but
not yet marked done. The replayer keeps that *in-flight window* small: it hands
over a batch only while the spooled messages in the producer number fewer than
`replay_window` (a batch is never split). So a crash during replay re-sends at
most `replay_window` messages, plus the direct requests that were spooled when
their acknowledgement was late (those in flight when Kafka went away). The
pipeline's dedup on (site_id, event_id) absorbs the copies.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from enum import StrEnum

from pressmeter.collectors.ingest.metrics import Metrics
from pressmeter.collectors.ingest.producer import KafkaSender, Ticket
from pressmeter.collectors.ingest.spool import BatchRef, Message, Spool

__all__ = ["DurableSink", "Where"]

log = logging.getLogger(__name__)


class Where(StrEnum):
    KAFKA = "kafka"
    SPOOL = "spool"


class DurableSink:
    """The one place that decides where a request's messages become durable."""

    def __init__(
        self,
        sender: KafkaSender,
        spool: Spool,
        ack_timeout_s: float,
        metrics: Metrics,
        replay_window: int,
    ) -> None:
        self.sender = sender
        self.spool = spool
        self.ack_timeout_s = ack_timeout_s
        self.metrics = metrics
        self.replay_window = replay_window
        # Messages of spooled batches in the producer, not yet marked done.
        self.in_flight = 0
        self._window_open = asyncio.Event()
        # Spooled batches not yet handed to the producer, oldest first.
        self._unsent: deque[BatchRef] = deque(spool.recovered)
        self.spooling = bool(self._unsent)
        self._wake = asyncio.Event()
        self._replayer: asyncio.Task[None] | None = None
        if self._unsent:
            log.info("spool: %d batches to send again after a restart", len(self._unsent))

    def start(self) -> None:
        self._replayer = asyncio.create_task(self._replay(), name="spool-replayer")
        self._wake.set()

    async def put(self, messages: list[Message]) -> Where:
        """Make `messages` durable; raises SpoolFull when they cannot be."""
        if (
            not self.spooling
            and not self.sender.brokers_down
            and self.sender.has_room(len(messages))
        ):
            started = time.perf_counter()
            ticket = self.sender.send(messages)
            try:
                delivered = await asyncio.wait_for(
                    asyncio.shield(ticket.future), self.ack_timeout_s
                )
            except TimeoutError:
                delivered = False
            if delivered:
                self.metrics.kafka_latency.observe(time.perf_counter() - started)
                return Where.KAFKA
            if not self.spooling:
                log.warning("kafka: no acknowledgement in %.1f s: spooling", self.ack_timeout_s)
            self.spooling = True
            ref = await self.spool.append(messages)
            self._follow(ticket, ref, len(messages))
            self.metrics.spooled.inc(len(messages))
            return Where.SPOOL
        self.spooling = True
        ref = await self.spool.append(messages)
        self._unsent.append(ref)
        self._wake.set()
        self.metrics.spooled.inc(len(messages))
        return Where.SPOOL

    def _follow(self, ticket: Ticket, ref: BatchRef, count: int) -> None:
        """Mark `ref` (of `count` messages) done when the producer's copy is
        acknowledged; send it again from the spool if that copy failed."""
        self.in_flight += count

        def done(t: Ticket) -> None:
            self.in_flight -= count
            self._window_open.set()
            if t.error is None:
                self.spool.mark_done(ref)
                self._maybe_direct()
            else:
                self._unsent.appendleft(ref)
                self._wake.set()

        if ticket.finished:
            done(ticket)
        else:
            ticket.on_done = done

    def _maybe_direct(self) -> None:
        if self.spooling and not self._unsent and self.spool.live_batches == 0:
            self.spooling = False
            log.info("kafka: spool drained, sending directly again")

    async def _replay(self) -> None:
        """Hand spooled batches to the producer, oldest first, as room allows."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._unsent:
                ref = self._unsent[0]
                messages = self.spool.read(ref)
                while self.in_flight and self.in_flight + len(messages) > self.replay_window:
                    self._window_open.clear()
                    await self._window_open.wait()
                while not self.sender.has_room(len(messages)):
                    await asyncio.sleep(0.05)
                self._unsent.popleft()
                self._follow(self.sender.send(messages), ref, len(messages))
                await asyncio.sleep(0)
            self._maybe_direct()

    async def close(self, timeout_s: float) -> int:
        """Stop replaying, flush the producer; what stays undone stays spooled."""
        if self._replayer is not None:
            self._replayer.cancel()
        left = await asyncio.get_running_loop().run_in_executor(None, self.sender.close, timeout_s)
        for _ in range(3):  # run the last delivery hand-overs (they mark batches done)
            await asyncio.sleep(0)
        self.spool.close()
        return left
