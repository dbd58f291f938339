"""The HTTP face of the ingest service (aiohttp): five endpoints, CORS per outlet.

    POST /v1/events   a JSON batch {"site_id", "key", "events": [...]} (browser)
                      or {"events": [...]} signed with X-PM-Site/-Timestamp/-Signature
    GET  /v1/p.gif    one event in the query string (no JavaScript needed)
    GET  /healthz     liveness, and whether Kafka or the spool takes the events
    GET  /metrics     Prometheus text
    GET  /openapi.json  this API as OpenAPI 3.1 (openapi.py)

Each request goes through: client limit → read → authenticate → parse → outlet
limit → `EventSteps` → `DurableSink` → answer. A refused request is answered
with `{"error": reason, "detail": ...}` and its status, and counted.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestPayloadError

from pressmeter.collectors.ingest.auth import ReplayGuard, check_browser, check_signature
from pressmeter.collectors.ingest.config import IngestConfig
from pressmeter.collectors.ingest.durable import DurableSink
from pressmeter.collectors.ingest.enrich import IpClassifier, SaltStore, load_provinces, parse_ip
from pressmeter.collectors.ingest.metrics import Metrics
from pressmeter.collectors.ingest.openapi import openapi_description
from pressmeter.collectors.ingest.producer import KafkaSender
from pressmeter.collectors.ingest.ratelimit import RateLimiter
from pressmeter.collectors.ingest.reasons import Refused, RequestRefusal
from pressmeter.collectors.ingest.registry import Outlet, Registry, load_registry
from pressmeter.collectors.ingest.scrub import connection_addresses
from pressmeter.collectors.ingest.spool import Spool, SpoolFull
from pressmeter.collectors.ingest.steps import Client, EventSteps, Outcome
from pressmeter.events import event_validator
from pressmeter.jsontext import MAX_DEPTH, MAX_INT_DIGITS, NotJson, read_json

__all__ = ["build_app"]

_GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
_INTEGER_FIELDS = ("ts", "engaged_ms", "played_ms")
_PIXEL_AUTH = ("site_id", "key")
_CONTENT_TYPES = ("", "application/json", "text/plain")


@dataclass
class Service:
    """Everything a request handler needs, built once per worker."""

    config: IngestConfig
    registry: Registry
    steps: EventSteps
    limits: RateLimiter
    guard: ReplayGuard
    metrics: Metrics
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network]
    origins: frozenset[str]
    sink: DurableSink | None = None

    # ------------------------------------------------------------ helpers

    def client_ip(self, request: web.Request) -> str | None:
        peer = request.remote
        forwarded = request.headers.get("X-Forwarded-For")
        if forwarded and peer and self.trusted:
            address = parse_ip(peer)  # "::ffff:127.0.0.1" on a "::" listener is 127.0.0.1
            if address is not None and any(address in net for net in self.trusted):
                return forwarded.split(",")[-1].strip()
        return peer

    def client(self, request: web.Request, ip: str | None, signed: bool) -> Client:
        seen = connection_addresses(request.remote, request.headers.get("X-Forwarded-For"))
        return Client(ip, request.headers.get("User-Agent", ""), signed, seen)

    def outlet(self, site_id: Any) -> Outlet:
        outlet = self.registry.get(site_id) if isinstance(site_id, str) else None
        if outlet is None:
            raise Refused(RequestRefusal.UNKNOWN_SITE, f"unknown site_id {str(site_id)[:80]!r}")
        return outlet

    def refusal(self, refused: Refused, headers: dict[str, str] | None = None) -> web.Response:
        self.metrics.refused.inc(refused.reason.value)
        headers = dict(headers or {})
        if refused.reason.status in (429, 503):
            headers["Retry-After"] = "1"
        body = orjson.dumps({"error": refused.reason.value, "detail": refused.detail})
        response = web.Response(
            body=body,
            status=refused.reason.status,
            content_type="application/json",
            headers=headers,
        )
        if refused.reason is RequestRefusal.BODY_TIMEOUT:
            response.force_close()  # the rest of a stalled body is not waited for
        return response

    async def deliver(self, site_id: str, client: Client, items: list[Any]) -> tuple[Outcome, str]:
        """Steps, then make the messages durable; the count is kept."""
        if not self.limits.outlet_ok(site_id, len(items)):
            raise Refused(RequestRefusal.RATE_LIMITED_OUTLET, f"site {site_id} is over its rate")
        outcome = self.steps.run(site_id, client, items, int(time.time() * 1000))
        assert self.sink is not None
        try:
            where = await self.sink.put(outcome.messages) if outcome.messages else "kafka"
        except SpoolFull as exc:
            raise Refused(RequestRefusal.SPOOL_FULL, f"Kafka is unreachable and {exc}") from exc
        self.metrics.accepted.inc(outcome.accepted)
        for _, problem in outcome.rejected:
            self.metrics.rejected.inc(problem.reason.value)
        self.metrics.write()
        return outcome, str(where)

    # ----------------------------------------------------------- handlers

    async def events(self, request: web.Request) -> web.Response:
        cors: dict[str, str] = {}
        try:
            ip = self.client_ip(request)
            if not self.limits.client_ok(ip or ""):
                raise Refused(RequestRefusal.RATE_LIMITED_CLIENT, "too many requests from you")
            kind = request.content_type if request.headers.get("Content-Type") else ""
            if kind not in _CONTENT_TYPES:
                raise Refused(
                    RequestRefusal.UNSUPPORTED_MEDIA_TYPE,
                    f"Content-Type {kind} (use application/json or text/plain)",
                )
            limit = self.config.server.max_body_bytes
            if (request.content_length or 0) > limit:
                raise Refused(RequestRefusal.BODY_TOO_LARGE, f"body over {limit} bytes")
            body = await _read_body(request, limit, self.config.server.body_timeout_s)
            signature = request.headers.get("X-PM-Signature")
            signed = signature is not None
            if signed:
                outlet = self.outlet(request.headers.get("X-PM-Site"))
                check_signature(
                    outlet,
                    self.guard,
                    self.config.auth.max_clock_skew_s,
                    request.method,
                    request.path_qs,
                    request.headers.get("X-PM-Timestamp"),
                    signature,
                    body,
                )
            envelope = _envelope(body)
            if not signed:
                outlet = self.outlet(envelope.get("site_id"))
                origin = request.headers.get("Origin")
                if origin is None:
                    raise Refused(
                        RequestRefusal.ORIGIN_NOT_ALLOWED,
                        "no Origin header: browsers send one; servers must sign their requests",
                    )
                check_browser(outlet, envelope.get("key"), origin, None)
                cors = _cors(origin)
            items = envelope["events"]
            if len(items) > self.config.server.max_events:
                raise Refused(
                    RequestRefusal.TOO_MANY_EVENTS,
                    f"{len(items)} events in one request (at most {self.config.server.max_events})",
                )
            client = self.client(request, ip, signed)
            outcome, where = await self.deliver(outlet.site_id, client, items)
        except Refused as refused:
            return self.refusal(refused, cors)
        answer = {
            "accepted": outcome.accepted,
            "rejected": [
                {"index": i, "reason": p.reason.value, "detail": p.detail}
                for i, p in outcome.rejected
            ],
            "durable": where,
        }
        return web.Response(
            body=orjson.dumps(answer), content_type="application/json", headers=cors
        )

    async def preflight(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin", "")
        if origin not in self.origins:
            return web.Response(status=403)
        headers = _cors(origin)
        headers["Access-Control-Allow-Methods"] = "POST, OPTIONS"
        headers["Access-Control-Allow-Headers"] = "Content-Type"
        headers["Access-Control-Max-Age"] = "86400"
        return web.Response(status=204, headers=headers)

    async def pixel(self, request: web.Request) -> web.Response:
        try:
            ip = self.client_ip(request)
            if not self.limits.client_ok(ip or ""):
                raise Refused(RequestRefusal.RATE_LIMITED_CLIENT, "too many requests from you")
            query = request.query
            outlet = self.outlet(query.get("site_id"))
            check_browser(
                outlet,
                query.get("key"),
                request.headers.get("Origin"),
                request.headers.get("Referer"),
            )
            event: dict[str, Any] = {k: v for k, v in query.items() if k not in _PIXEL_AUTH}
            event["site_id"] = outlet.site_id
            _read_integers(event)
            client = self.client(request, ip, signed=False)
            outcome, _ = await self.deliver(outlet.site_id, client, [event])
        except Refused as refused:
            return self.refusal(refused)
        headers = {"Cache-Control": "no-store", "X-PM-Accepted": str(outcome.accepted)}
        if outcome.rejected:
            headers["X-PM-Rejected"] = outcome.rejected[0][1].reason.value
        return web.Response(body=_GIF, content_type="image/gif", headers=headers)

    async def healthz(self, request: web.Request) -> web.Response:
        assert self.sink is not None
        body = {
            "status": "ok",
            "kafka": "down" if self.sink.sender.brokers_down else "up",
            "spooling": self.sink.spooling,
            "spool_bytes": self.sink.spool.live_bytes,
        }
        return web.json_response(body)

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(
            text=self.metrics.render(),
            content_type="text/plain",
            charset="utf-8",
            headers={"X-Content-Type-Options": "nosniff"},
        )


async def _openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_description())


def _cors(origin: str) -> dict[str, str]:
    return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}


async def _read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The body, decompressed as its Content-Encoding says; refused if too large,
    not in that encoding (aiohttp would answer the latter with a 500), or not
    all sent within `timeout_s` (a stalled client must not hold the connection)."""
    try:
        if request.content.is_eof():  # it came with the headers, as small bodies do: no timer
            return await request.read()
        async with asyncio.timeout(timeout_s):
            return await request.read()
    except TimeoutError:
        raise Refused(RequestRefusal.BODY_TIMEOUT, f"no whole body in {timeout_s} s") from None
    except web.HTTPRequestEntityTooLarge:
        raise Refused(RequestRefusal.BODY_TOO_LARGE, f"body over {limit} bytes") from None
    except RequestPayloadError:  # e.g. Content-Encoding: gzip on a plain body
        encoding = request.headers.get("Content-Encoding", "(none)")[:40]
        raise Refused(
            RequestRefusal.BAD_CONTENT_ENCODING,
            f"body cannot be decoded as Content-Encoding {encoding!r} says",
        ) from None


def _read_integers(event: dict[str, Any]) -> None:
    """The pixel's integer fields, digits in the query string, as integers: of any
    size, as JSON integers are, up to the digits JSON text may hold."""
    for name in _INTEGER_FIELDS:
        value = event.get(name)
        if isinstance(value, str) and value.isascii() and value.isdigit():
            if len(value) > MAX_INT_DIGITS:
                raise Refused(
                    RequestRefusal.BAD_PARAMETER,
                    f"{name} is not an integer of at most {MAX_INT_DIGITS} digits",
                )
            event[name] = int(value)


def _envelope(body: bytes) -> dict[str, Any]:
    """The decoded body, read as the pipeline reads a line (`pressmeter.jsontext`):
    two levels more for the envelope and its events array."""
    try:
        envelope = read_json(body, MAX_DEPTH + 2)
    except NotJson as exc:
        raise Refused(RequestRefusal.NOT_JSON, f"body is not JSON: {exc}") from None
    if type(envelope) is not dict:
        raise Refused(RequestRefusal.BAD_ENVELOPE, "body must be an object with an events array")
    if type(envelope.get("events")) is not list:
        raise Refused(RequestRefusal.BAD_ENVELOPE, "events must be an array of event objects")
    return envelope


def build_service(config: IngestConfig, worker: int = 0, workers: int = 1) -> Service:
    """The per-worker state that needs no event loop."""
    spool_root = Path(config.spool.dir)
    registry = load_registry(config.registry)
    provinces = load_provinces(config.enrich.geoip_csv, config.enrich.geoip_locations_csv)
    steps = EventSteps(
        event_validator(),
        IpClassifier.from_file(config.enrich.datacenter_cidrs),
        provinces,
        SaltStore(config.salt_dir),
        config.kafka.topic,
        config.kafka.rejected_topic,
    )
    lim = config.limits
    return Service(
        config=config,
        registry=registry,
        steps=steps,
        limits=RateLimiter(
            lim.outlet_events_per_s / workers,
            lim.outlet_burst / workers,
            lim.client_requests_per_s / workers,
            lim.client_burst / workers,
        ),
        guard=ReplayGuard(spool_root / "replay", 2 * config.auth.max_clock_skew_s),
        metrics=Metrics(spool_root / "metrics", worker),
        trusted=[ipaddress.ip_network(c, strict=False) for c in config.server.trusted_proxies],
        origins=frozenset(o for outlet in registry for o in outlet.allowed_origins),
    )


def build_app(config: IngestConfig, worker: int = 0, workers: int = 1) -> web.Application:
    """The aiohttp application of one worker; Kafka and the spool open at start-up."""
    service = build_service(config, worker, workers)
    app = web.Application(client_max_size=config.server.max_body_bytes)
    app["service"] = service

    async def open_sink(app: web.Application) -> None:
        sender = KafkaSender(
            config.kafka.bootstrap,
            config.kafka.linger_ms,
            config.kafka.max_in_producer,
            config.kafka.librdkafka,
        )
        spool = Spool(
            Path(config.spool.dir) / f"worker-{worker}",
            config.spool.max_bytes,
            config.spool.segment_bytes,
        )
        service.sink = DurableSink(
            sender,
            spool,
            config.kafka.ack_timeout_ms / 1000,
            service.metrics,
            config.spool.replay_window,
        )
        service.sink.start()

    async def close_sink(app: web.Application) -> None:
        if service.sink is not None:
            await service.sink.close(config.server.shutdown_timeout_s)
        service.metrics.write(force=True)

    app.on_startup.append(open_sink)
    app.on_cleanup.append(close_sink)
    app.router.add_post("/v1/events", service.events)
    app.router.add_route("OPTIONS", "/v1/events", service.preflight)
    app.router.add_get("/v1/p.gif", service.pixel)
    app.router.add_get("/healthz", service.healthz)
    app.router.add_get("/metrics", service.metrics_text)
    app.router.add_get("/openapi.json", _openapi)
    return app
