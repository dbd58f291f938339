"""Property-based (hypothesis): the ingest service and the batch pipeline give every
event the same verdict, kept or refused for the same reason (issue 8, "one validator,
one answer").

Each generated event is JSON text built field by field from a valid one, with
fields dropped, replaced by nasty values (integers of any size, numbers with
exponents, booleans, null, unicode and control characters, strings that are not
UTF-8, deep nesting, 4,300-digit integers) or cut short. It goes once through the
real service (signed, on the real Kafka) and once through the pipeline's parser as
the line a collector doing ingest's enrichment would have written. Ingest's verdict
is its answer for the event, or `not_json` when it refuses the whole body as not
JSON (the pipeline refuses that line as `not_json`).
"""

from __future__ import annotations

import itertools
import time
from collections import Counter

import orjson
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import TV_SECRET

from pressmeter.collectors.ingest.auth import sign
from pressmeter.pipelines.parse import EventParser, LineBatch

pytestmark = pytest.mark.kafka

ZONE = "Asia/Ho_Chi_Minh"
HOUR = 3_600_000
# Set by ingest on a signed request that names no address; the pipeline line carries them.
ENRICHED = ("received_at", "ip_class")
# Fields ingest owns (the authenticated site, the forwarded address, the province
# it looks up) are not generated: their verdicts differ by design.
OWNED = ("site_id", "ip", "province", *ENRICHED)

_nonce = itertools.count()


def _text(value: object) -> bytes:
    return orjson.dumps(value)


def _base(kind: str, now_ms: int) -> dict[str, bytes]:
    """A valid client event of `kind`, as JSON text per field."""
    fields: dict[str, object] = {
        "event_id": f"f-{next(_nonce)}",
        "type": kind,
        "device_id": "dev-fuzz",
        "ts": now_ms - HOUR,
        "ua": "SmartTV Tizen",
        "device_type": "tv",
    }
    if kind in ("page_view", "engagement"):
        fields["url"] = "https://tv1.vn/a"
    if kind == "engagement":
        fields["engaged_ms"] = 5_000
    if kind == "media":
        fields.update(media_id="live-1", play_id="p1", action="heartbeat", played_ms=30_000)
    return {name: _text(value) for name, value in fields.items()}


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


NASTY = st.one_of(
    st.integers().map(lambda i: str(i).encode()),
    st.integers(min_value=2**63 - 2, max_value=10**40).map(lambda i: str(i).encode()),
    st.sampled_from([b"100000000000000000000000", b"-1", b"0", b"4102444800001"]),
    st.from_regex(rb"\A-?[0-9]{1,25}(\.[0-9]{1,5})?([eE][+-]?[0-9]{1,4})?\Z"),
    st.sampled_from([b"true", b"false", b"null", b"1.0", b"1e3", b"1e400", b"[]", b"{}"]),
    st.text(max_size=40).map(_text),  # any unicode, control characters escaped
    st.text(alphabet=st.characters(max_codepoint=0x1F), min_size=1, max_size=5).map(
        lambda s: b'"' + s.encode() + b'"'  # raw control characters: not JSON
    ),
    st.binary(min_size=1, max_size=12).map(
        lambda b: b'"' + b.replace(b'"', b"").replace(b"\\", b"") + b'"'  # often not UTF-8
    ),
    st.integers(min_value=1, max_value=300).map(_nested),
    st.sampled_from([_nested(62), _nested(63), _nested(64), _nested(1000)]),
    st.integers(min_value=4295, max_value=4305).map(lambda n: b"7" * n),
)


@st.composite
def events(draw: st.DrawFn, now_ms: int) -> tuple[list[tuple[bytes, bytes]], int | None]:
    """(fields as (name, JSON text), where to cut the object's text or None)."""
    fields = _base(draw(st.sampled_from(["page_view", "engagement", "media"])), now_ms)
    for name in draw(st.lists(st.sampled_from(sorted(fields)), max_size=3, unique=True)):
        if draw(st.booleans()):
            del fields[name]
        else:
            fields[name] = draw(NASTY)
    for extra in range(draw(st.integers(min_value=0, max_value=2))):
        fields[f"x_{extra}"] = draw(NASTY)
    cut = draw(st.one_of(st.none(), st.none(), st.none(), st.integers(min_value=1, max_value=60)))
    return [(name.encode(), text) for name, text in fields.items()], cut


def _object(fields: list[tuple[bytes, bytes]], cut: int | None) -> bytes:
    text = b"{" + b",".join(b'"' + name + b'":' + value for name, value in fields) + b"}"
    return text if cut is None else text[:-cut]


def _ingest_verdict(url: str, event: bytes) -> tuple[str, int]:
    """(verdict, the request's server time in ms, give or take the round trip)."""
    body = b'{"n":%d,"events":[' % next(_nonce) + event + b"]}"
    stamp = str(int(time.time()))
    headers = {
        "X-PM-Site": "tv1.vn",
        "X-PM-Timestamp": stamp,
        "X-PM-Signature": sign(TV_SECRET, "POST", "/v1/events", stamp, body),
        "Content-Type": "application/json",
    }
    now_ms = int(time.time() * 1000)
    answer = requests.post(f"{url}/v1/events", data=body, headers=headers, timeout=30)
    payload = answer.json()
    if answer.status_code == 400 and payload["error"] == "not_json":
        return "not_json", now_ms
    assert answer.status_code == 200, (answer.status_code, payload, event[:300])
    if payload["accepted"] == 1:
        return "kept", now_ms
    return payload["rejected"][0]["reason"], now_ms


def _pipeline_verdict(parser: EventParser, line: bytes) -> str:
    kept, rejected = parser.parse(LineBatch(0, "file:fuzz", 1, [line + b"\n"]))
    return "kept" if kept.num_rows else rejected["reason"][0].as_py()


def test_ingest_and_pipeline_give_every_event_the_same_verdict(service):
    parser = EventParser(ZONE)
    verdicts: Counter[str] = Counter()
    start_ms = int(time.time() * 1000)

    @settings(
        max_examples=600,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(events(start_ms))
    def agree(generated: tuple[list[tuple[bytes, bytes]], int | None]) -> None:
        fields, cut = generated
        ingest, now_ms = _ingest_verdict(service.url, _object(fields, cut))
        # What ingest adds, the pipeline line holds: the site, its clock, the class.
        enriched = [
            (b"site_id", b'"tv1.vn"'),
            *fields,
            (b"received_at", str(now_ms).encode()),
            (b"ip_class", b'"unknown"'),
        ]
        assert _pipeline_verdict(parser, _object(enriched, cut)) == ingest, fields
        verdicts[ingest] += 1

    agree()
    # The generator reaches every kind of verdict, so the property says something.
    assert {"kept", "not_json", "wrong_type", "missing_field", "invalid_value"} <= set(verdicts)
    # And every event ingest refused is on the rejected topic with its reason.
    on_topic = Counter(value["reason"] for _, value, _ in service.rejected())
    refused = {k: n for k, n in verdicts.items() if k not in ("kept", "not_json")}
    assert on_topic == refused
