"""The ingest API described as OpenAPI 3.1, served at `GET /openapi.json`.

Built in this one place from what the handlers themselves use: the closed set of
request refusals with their statuses (`reasons.RequestRefusal`) and the event
schema of `schemas/` (a client's event is the canonical event before enrichment,
so none of its fields is required here: the service says what is missing). A
client or a fuzzer (tests/ingest/test_fuzz_http.py, schemathesis) reads it from
the running service, so the description cannot drift from the endpoints.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from pressmeter import schemas
from pressmeter.collectors.ingest.reasons import RejectReason, RequestRefusal

__all__ = ["openapi_description"]

# The keywords of an event property a client may rely on (patterns and limits);
# the `not` rules of device_id are the service's to check, not a client's to know.
_KEPT_KEYWORDS = ("type", "enum", "pattern", "minimum", "maximum", "minLength", "maxLength")
_JSON = "application/json"


def _client_event() -> dict[str, Any]:
    properties = schemas.load_schema(schemas.EVENT_SCHEMA)["properties"]
    return {
        "type": "object",
        "description": "A canonical event before enrichment; unknown fields are ignored.",
        "properties": {
            name: {k: v for k, v in spec.items() if k in _KEPT_KEYWORDS}
            for name, spec in properties.items()
        },
    }


def _refusals() -> dict[str, Any]:
    """One response per status a refusal is answered with, naming its reasons."""
    by_status: dict[int, list[str]] = {}
    for reason in RequestRefusal:
        by_status.setdefault(reason.status, []).append(reason.value)
    return {
        str(status): {
            "description": "Refused: " + ", ".join(reasons),
            "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Refusal"}}},
        }
        for status, reasons in sorted(by_status.items())
    }


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "schema": {"type": "string"}, "description": description}


def _events_operation() -> dict[str, Any]:
    return {
        "summary": "A batch of events: a browser's (site_id, key, Origin) or a signed server's",
        "parameters": [
            _header("Origin", "a browser's origin, one of the outlet's allowed origins"),
            _header("X-PM-Site", "signed requests: the outlet's site_id"),
            _header("X-PM-Timestamp", "signed requests: Unix seconds"),
            _header("X-PM-Signature", "signed requests: hex HMAC-SHA256 (collectors/ingest)"),
        ],
        "requestBody": {
            "required": True,
            "content": {
                _JSON: {"schema": {"$ref": "#/components/schemas/Envelope"}},
                "text/plain": {"schema": {"type": "string"}},  # sendBeacon's JSON text
            },
        },
        "responses": {
            "200": {
                "description": "Taken: accepted events are durable, refused ones listed",
                "content": {_JSON: {"schema": {"$ref": "#/components/schemas/Answer"}}},
            },
            **_refusals(),
        },
    }


def _pixel_operation() -> dict[str, Any]:
    properties = _client_event()["properties"]
    query = [
        {"name": name, "in": "query", "schema": {"type": "string"}}
        for name in ("site_id", "key", *(n for n in properties if n != "site_id"))
    ]
    return {
        "summary": "One event in the query string (no JavaScript); integers as digits",
        "parameters": query,
        "responses": {
            "200": {
                "description": "A 1x1 GIF; X-PM-Accepted, and X-PM-Rejected naming the reason",
                "content": {"image/gif": {"schema": {"type": "string", "format": "binary"}}},
            },
            **_refusals(),
        },
    }


def _components() -> dict[str, Any]:
    return {
        "Envelope": {
            "type": "object",
            "properties": {
                "site_id": {"type": "string"},
                "key": {"type": "string", "description": "the outlet's public key (browsers)"},
                "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            },
        },
        "Event": _client_event(),
        "Answer": {
            "type": "object",
            "required": ["accepted", "rejected", "durable"],
            "properties": {
                "accepted": {"type": "integer", "minimum": 0},
                "durable": {"type": "string", "enum": ["kafka", "spool"]},
                "rejected": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["index", "reason", "detail"],
                        "properties": {
                            "index": {"type": "integer", "minimum": 0},
                            "reason": {"type": "string", "enum": [r.value for r in RejectReason]},
                            "detail": {"type": "string"},
                        },
                    },
                },
            },
        },
        "Refusal": {
            "type": "object",
            "required": ["error", "detail"],
            "properties": {
                "error": {"type": "string", "enum": [r.value for r in RequestRefusal]},
                "detail": {"type": "string"},
            },
        },
    }


def _plain(description: str, media_type: str) -> dict[str, Any]:
    return {"responses": {"200": {"description": description, "content": {media_type: {}}}}}


@cache
def openapi_description() -> dict[str, Any]:
    """The OpenAPI document of the service."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Pressmeter ingest", "version": "1"},
        "paths": {
            "/v1/events": {
                "post": _events_operation(),
                "options": {
                    "summary": "CORS preflight: allowed for the outlets' origins only",
                    "parameters": [_header("Origin", "the page's origin")],
                    "responses": {
                        "204": {"description": "The origin is allowed"},
                        "403": {"description": "The origin is not an outlet's"},
                    },
                },
            },
            "/v1/p.gif": {"get": _pixel_operation()},
            "/healthz": {"get": _plain("Liveness; whether Kafka or the spool takes events", _JSON)},
            "/metrics": {"get": _plain("Prometheus text", "text/plain")},
            "/openapi.json": {"get": _plain("This description", _JSON)},
        },
        "components": {"schemas": _components()},
    }
