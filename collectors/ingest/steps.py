"""From a client's events to Kafka messages, as a list of small named steps:

    drop_not_object → take_ip → put_site → put_received_at → put_ua
    → put_ip_class → put_province → put_device_type → put_device_id
    → validate (the pipeline's own `EventValidator`) → message

The client's address is used by the `put_*` steps and goes no further: it is
never in a message (where an accepted event's own text contains it, say in a
URL, it is replaced by `[ip]`), and a refused event's `raw` is the client's event with the
`ip` field removed and anything shaped like an address replaced by `[ip]`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from pressmeter.collectors.ingest.enrich import (
    IpClassifier,
    ProvinceTable,
    SaltStore,
    device_type,
    parse_ip,
)
from pressmeter.collectors.ingest.spool import Message
from pressmeter.events import EventValidator, Invalid, RejectReason
from pressmeter.jsontext import encode

__all__ = ["Client", "EventSteps", "Outcome", "scrub"]

_IPV4 = r"(?<![\d.])\d{1,3}(?:\.\d{1,3}){3}(?![\d.])"
_IPV6 = r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"
_ADDRESS = re.compile(f"{_IPV4}|{_IPV6}")


def scrub(text: str, ip: str | None) -> str:
    """`text` with the client address, and anything shaped like an address, as [ip]."""
    if ip:
        text = text.replace(ip, "[ip]")
    return _ADDRESS.sub("[ip]", text)


@dataclass(frozen=True)
class Client:
    """Who sent the request. `ip` lives only as long as the request."""

    ip: str | None
    ua: str
    signed: bool


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

    def run(self, site_id: str, client: Client, items: list[Any], now_ms: int) -> Outcome:
        outcome = Outcome()
        places: dict[str | None, _Place] = {}
        now_s = now_ms / 1000
        site_key = site_id.encode() + b"/"
        for index, item in enumerate(items):
            # drop_not_object
            if type(item) is not dict:
                problem = Invalid(
                    RejectReason.NOT_OBJECT, f"a JSON {type(item).__name__}, not an object"
                )
                self._reject(outcome, index, problem, site_id, item, client.ip, now_ms)
                continue
            # take_ip: a signed collector forwards its user's address; a browser cannot claim one
            claimed = item.pop("ip", None)
            ip = (claimed if type(claimed) is str else None) if client.signed else client.ip
            event = item.copy()
            # put_site
            if event.setdefault("site_id", site_id) != site_id:
                problem = Invalid(
                    RejectReason.INVALID_VALUE, f"site_id is not the authenticated site {site_id}"
                )
                self._reject(outcome, index, problem, site_id, item, ip, now_ms)
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
                self._reject(outcome, index, problem, site_id, item, ip, now_ms)
                continue
            value = encode(event)  # integers of any size, as read
            if ip and ip.encode() in value:  # e.g. a URL naming the address: not kept either
                value = value.replace(ip.encode(), b"[ip]")
            outcome.messages.append((self.topic, site_key + event["device_id"].encode(), value))
            outcome.accepted += 1
        return outcome

    def _reject(
        self,
        outcome: Outcome,
        index: int,
        problem: Invalid,
        site_id: str,
        raw: Any,
        ip: str | None,
        now_ms: int,
    ) -> None:
        record = {
            "reason": problem.reason.value,
            "detail": scrub(problem.detail, ip),
            "site_id": site_id,
            "received_at": now_ms,
            "raw": scrub(encode(raw).decode(), ip),
        }
        outcome.rejected.append((index, problem))
        outcome.messages.append((self.rejected_topic, site_id.encode(), orjson.dumps(record)))
