"""Exceptions of the SDK, in one place.

    SdkError                 base of everything the SDK raises
    ├── QueueFull            send() refused an event: the local queue is at max_queue
    ├── ClientClosed         send() after close()
    └── InvalidEvent         send() got something that is not a canonical event
                             (also a ValueError)

Delivery problems (ingest unreachable after every retry, a request refused
with a 4xx, events rejected one by one) are not raised in the caller's thread:
the sender thread counts them in `Client.stats` and hands them to `on_failure`.
"""

from __future__ import annotations

__all__ = ["ClientClosed", "InvalidEvent", "QueueFull", "SdkError"]


class SdkError(Exception):
    """Base class of the SDK's exceptions."""


class QueueFull(SdkError):
    """The bounded local queue holds `max_queue` events: this event was NOT
    queued (it is counted in `stats.refused_queue_full`). The caller decides:
    drop it knowingly, keep it and try again later, or slow down."""


class ClientClosed(SdkError):
    """The client was closed; it takes no more events."""


class InvalidEvent(SdkError, ValueError):
    """The event cannot be sent (not an object, a required field missing or of
    the wrong type). Checked before queueing so the mistake shows where it is made."""
