"""Pressmeter SDK for servers: broadcaster back ends, set-top-box and OTT
platforms send canonical events (docs/standard.md §1) to the ingest service,
HMAC-signed, batched, retried. Standard library only: the folder can be copied
into any Python 3.11+ code base (its imports are relative).

    from pressmeter.collectors.sdk import Client, MediaSession, page_view

    with Client("https://ingest.example.vn", "tv1.vn", secret=SECRET) as client:
        client.send(page_view("https://tv1.vn/news/1", device_id="stb-42"))
        play = MediaSession("stb-42", "vtv1-live", media_kind="video", stream="live")
        client.send(play.start())

See docs/integration-broadcaster.md.
"""

from .client import Client, ClientStats, FailureHandler
from .errors import ClientClosed, InvalidEvent, QueueFull, SdkError
from .events import MediaSession, check_event, engagement, new_event_id, now_ms, page_view
from .signing import sign, signed_headers

__all__ = [
    "Client",
    "ClientClosed",
    "ClientStats",
    "FailureHandler",
    "InvalidEvent",
    "MediaSession",
    "QueueFull",
    "SdkError",
    "check_event",
    "engagement",
    "new_event_id",
    "now_ms",
    "page_view",
    "sign",
    "signed_headers",
]
