"""From a client's events to Kafka messages, as a list of small named steps:

    drop_not_object → take_ip → put_site → put_received_at → put_ua
    → put_ip_class → put_province → put_device_type → put_device_id
    → validate (the pipeline's own `EventValidator`) → message

The client's address is used by the `put_*` steps and goes no further: it is
never in a message, key or value. Where an accepted event holds one of the
request's addresses (its peer, its X-Forwarded-For addresses, a signed event's
`ip`) in any spelling (`scrub.AddressScrub`: a device_id `box-81.23.99.1`, a
URL, an integer or hex form), it is replaced by `[ip]`, in the Kafka key too,
and the event is checked again as it will be written. A refused event's `raw`
is the client's event with the `ip` field removed, those addresses and
anything shaped like an address replaced by `[ip]`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from pressmeter.collectors.ingest.enrich import (
    IpAddress,
    IpClassifier,
    ProvinceTable,
    SaltStore,
    device_type,
    parse_ip,
)
from pressmeter.collectors.ingest.scrub import AddressScrub, scrub_shapes
from pressmeter.collectors.ingest.spool import Message
from pressmeter.events import EventValidator, Invalid, RejectReason
from pressmeter.jsontext import encode

__all__ = ["Client", "EventSteps", "Outcome"]


@dataclass(frozen=True)
class Client:
    """Who sent the request. `ip` (the address enrichment uses) and `seen` (every
    address of the connection: peer and X-Forwarded-For) live only as long as
    the request."""

    ip: str | None
    ua: str
    signed: bool
    seen: tuple[IpAddress, ...] = ()


@dataclass
class Outcome:
    """What a request's events became."""

    messages: list[Message] = field(default_factory=list)
    accepted: int = 0
    rejected: list[tuple[int, Invalid]] = field(default_factory=list)


@dataclass
class _Place:
    """What an address tells, computed once per address in a request."""

    ip_class: str
    province: str | None


@dataclass
class _Kept:
    """An event that passed validation, before its address check."""

    index: int
    item: Any
    event: dict[str, Any]
    value: bytes
    scrub: AddressScrub


class EventSteps:
    """The per-event steps, configured once per process."""

    def __init__(
        self,
        validator: EventValidator,
        classifier: IpClassifier,
        provinces: ProvinceTable,
        salts: SaltStore,
        topic: str,
        rejected_topic: str,
    ) -> None:
        self.validator = validator
        self.classifier = classifier
        self.provinces = provinces
        self.salts = salts
        self.topic = topic
        self.rejected_topic = rejected_topic

    def _place(self, ip: str | None, cache: dict[str | None, _Place]) -> _Place:
        place = cache.get(ip)
        if place is None:
            address = parse_ip(ip) if ip else None
            place = _Place(self.classifier.classify(address), self.provinces.province(address))
            cache[ip] = place
        return place

    def _scrub(
        self, client: Client, ip: str | None, cache: dict[str | None, AddressScrub]
    ) -> AddressScrub:
        """What forgets the connection's addresses and the event's own `ip`."""
        scrub = cache.get(ip)
        if scrub is None:
            address = parse_ip(ip) if ip else None
            scrub = AddressScrub((*client.seen, address) if address else client.seen)
            cache[ip] = scrub
        return scrub

    def run(self, site_id: str, client: Client, items: list[Any], now_ms: int) -> Outcome:
        outcome = Outcome()
        places: dict[str | None, _Place] = {}
        scrubs: dict[str | None, AddressScrub] = {}
        kept: list[_Kept] = []
        now_s = now_ms / 1000
        for index, item in enumerate(items):
            # drop_not_object
            if type(item) is not dict:
                problem = Invalid(
                    RejectReason.NOT_OBJECT, f"a JSON {type(item).__name__}, not an object"
                )
                scrub = self._scrub(client, client.ip, scrubs)
                self._reject(outcome, index, problem, site_id, item, scrub, now_ms)
                continue
            # take_ip: a signed collector forwards its user's address; a browser cannot claim one
            claimed = item.pop("ip", None)
            ip = (claimed if type(claimed) is str else None) if client.signed else client.ip
            scrub = self._scrub(client, ip, scrubs)
            event = item.copy()
            # put_site
            if event.setdefault("site_id", site_id) != site_id:
                problem = Invalid(
                    RejectReason.INVALID_VALUE, f"site_id is not the authenticated site {site_id}"
                )
                self._reject(outcome, index, problem, site_id, item, scrub, now_ms)
                continue
            # put_received_at
            event["received_at"] = now_ms
            # put_ua
            if not client.signed:
                event["ua"] = client.ua
            ua = event.get("ua")
            # put_ip_class, put_province
            place = self._place(ip, places)
            event["ip_class"] = place.ip_class
            if place.province is not None:
                event["province"] = place.province
            else:
                event.pop("province", None)
            # put_device_type
            if "device_type" not in event and type(ua) is str:
                event["device_type"] = device_type(ua)
            # put_device_id: cookieless, from the address, when the client has none
            if "device_id" not in event and ip and type(ua) is str:
                event["device_id"] = self.salts.device_id(site_id, ip, ua, now_s)
            problem = self.validator.validate(event)
            if problem is not None:
                self._reject(outcome, index, problem, site_id, item, scrub, now_ms)
                continue
            kept.append(_Kept(index, item, event, encode(event), scrub))  # integers as read
        self._message(outcome, kept, site_id, now_ms)
        outcome.rejected.sort(key=lambda rejected: rejected[0])
        return outcome

    def _message(self, outcome: Outcome, kept: list[_Kept], site_id: str, now_ms: int) -> None:
        """The accepted events as messages, each of the request's addresses they
        hold (a URL or a device_id naming one) replaced; then checked again as
        written. One test over all values of a request first: most hold none."""
        suspects = {
            scrub
            for scrub in {k.scrub for k in kept}
            if scrub.found(b"\n".join(k.value for k in kept if k.scrub is scrub))
        }
        site_key = site_id.encode() + b"/"
        for k in kept:
            event, value = k.event, k.value
            if k.scrub in suspects and k.scrub.found(value):
                event = k.scrub.value(event)
                problem = self.validator.validate(event)
                if problem is not None:
                    self._reject(outcome, k.index, problem, site_id, k.item, k.scrub, now_ms)
                    continue
                value = encode(event)
            outcome.messages.append((self.topic, site_key + event["device_id"].encode(), value))
            outcome.accepted += 1

    def _reject(
        self,
        outcome: Outcome,
        index: int,
        problem: Invalid,
        site_id: str,
        raw: Any,
        scrub: AddressScrub,
        now_ms: int,
    ) -> None:
        record = {
            "reason": problem.reason.value,
            "detail": scrub_shapes(scrub.text(problem.detail)),
            "site_id": site_id,
            "received_at": now_ms,
            "raw": scrub_shapes(scrub.text(encode(raw).decode())),
        }
        outcome.rejected.append((index, problem))
        outcome.messages.append((self.rejected_topic, site_id.encode(), orjson.dumps(record)))
