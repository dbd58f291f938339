"""Why the ingest service refuses a whole request, next to why it refuses one event.

A refused *event* inside an accepted request carries a `RejectReason` of
`pressmeter.events`, the closed set the pipeline uses too, and goes to the
rejected topic. A refused *request* never reaches Kafka: the client gets a 4xx
(or 429/503) naming one `RequestRefusal`, and the refusal is counted. Both sets
are closed, so `/metrics` and dashboards can list every outcome.
"""

from __future__ import annotations

from enum import StrEnum

from pressmeter.events import RejectReason

__all__ = ["Refused", "RejectReason", "RequestRefusal"]


class RequestRefusal(StrEnum):
    """Why a whole HTTP request was refused, with the status it is answered with."""

    NOT_JSON = "not_json"
    BAD_ENVELOPE = "bad_envelope"
    BAD_CONTENT_ENCODING = "bad_content_encoding"
    BAD_PARAMETER = "bad_parameter"
    BODY_TOO_LARGE = "body_too_large"
    TOO_MANY_EVENTS = "too_many_events"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    UNKNOWN_SITE = "unknown_site"
    BAD_KEY = "bad_key"
    ORIGIN_NOT_ALLOWED = "origin_not_allowed"
    BAD_SIGNATURE = "bad_signature"
    STALE_TIMESTAMP = "stale_timestamp"
    REPLAYED_SIGNATURE = "replayed_signature"
    RATE_LIMITED_OUTLET = "rate_limited_outlet"
    RATE_LIMITED_CLIENT = "rate_limited_client"
    SPOOL_FULL = "spool_full"
    BODY_TIMEOUT = "body_timeout"

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS = {
    RequestRefusal.NOT_JSON: 400,
    RequestRefusal.BAD_ENVELOPE: 400,
    RequestRefusal.BAD_CONTENT_ENCODING: 400,
    RequestRefusal.BAD_PARAMETER: 400,
    RequestRefusal.BODY_TOO_LARGE: 413,
    RequestRefusal.TOO_MANY_EVENTS: 413,
    RequestRefusal.UNSUPPORTED_MEDIA_TYPE: 415,
    RequestRefusal.UNKNOWN_SITE: 400,
    RequestRefusal.BAD_KEY: 401,
    RequestRefusal.ORIGIN_NOT_ALLOWED: 403,
    RequestRefusal.BAD_SIGNATURE: 401,
    RequestRefusal.STALE_TIMESTAMP: 401,
    RequestRefusal.REPLAYED_SIGNATURE: 403,
    RequestRefusal.RATE_LIMITED_OUTLET: 429,
    RequestRefusal.RATE_LIMITED_CLIENT: 429,
    RequestRefusal.SPOOL_FULL: 503,
    RequestRefusal.BODY_TIMEOUT: 408,
}


class Refused(Exception):
    """Raised by a step to refuse the request; the app answers it as JSON."""

    def __init__(self, reason: RequestRefusal, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
