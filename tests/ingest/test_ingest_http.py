"""Request-level behaviour of the ingest service over real HTTP and real Kafka:
what lands on each topic, what every bad input is answered, browser and
signed authentication, HMAC replay and clock skew, /healthz and /metrics."""

from __future__ import annotations

import gzip
import time
import uuid

import orjson
import pytest
import requests
from ingest_helpers import (
    BROWSER_UA,
    DATACENTER,
    NEWS_KEY,
    ORIGIN,
    RESIDENTIAL_HN,
    TV_SECRET,
    browser_post,
    page_view,
    pixel_params,
    signed_post,
)

from pressmeter.collectors.ingest.auth import sign
from pressmeter.jsontext import encode

pytestmark = pytest.mark.kafka


def _uid() -> str:
    return uuid.uuid4().hex[:12]


def _by_id(records):
    return {value.get("event_id"): (key, value) for key, value, _ in records}


def test_browser_batch_is_enriched_and_bad_events_rejected_alone(service):
    ids = [f"ok-{_uid()}", f"ok-{_uid()}", f"bad-{_uid()}"]
    events = [
        page_view(ids[0], received_at=1, ip_class="datacenter", ua="spoofed"),  # overwritten
        {k: v for k, v in page_view(ids[1]).items() if k != "device_id"},  # cookieless
        page_view(ids[2], type="click"),
        "not an object",
    ]
    before = int(time.time() * 1000)
    answer = browser_post(service.url, events)
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    body = answer.json()
    assert body["accepted"] == 2 and body["durable"] == "kafka"
    assert [(r["index"], r["reason"]) for r in body["rejected"]] == [
        (2, "invalid_value"),
        (3, "not_object"),
    ]
    found = _by_id(service.events())
    key, first = found[ids[0]]
    assert key == b"news1.vn/dev-a"
    assert before <= first["received_at"] <= int(time.time() * 1000)
    assert first["ip_class"] == "residential"
    assert first["province"] == "VN-HN"
    assert first["device_type"] == "mobile"
    assert first["ua"] == BROWSER_UA
    _, second = found[ids[1]]
    assert second["device_id"].startswith("c-") and len(second["device_id"]) == 34
    assert ids[2] not in found
    rejected = [v for _, v, _ in service.rejected() if ids[2] in v["raw"]]
    assert len(rejected) == 1
    assert rejected[0]["reason"] == "invalid_value"
    assert rejected[0]["detail"] == "type not one of page_view|engagement|media"
    assert rejected[0]["site_id"] == "news1.vn"
    assert orjson.loads(rejected[0]["raw"])["type"] == "click"


def test_cookieless_device_id_is_stable_per_address_and_ua(service):
    ids = [f"c-{_uid()}" for _ in range(3)]
    strip = [{k: v for k, v in page_view(i).items() if k != "device_id"} for i in ids]
    assert browser_post(service.url, strip[:1], ip=RESIDENTIAL_HN).status_code == 200
    assert browser_post(service.url, strip[1:2], ip=RESIDENTIAL_HN).status_code == 200
    assert browser_post(service.url, strip[2:], ip="14.160.200.9").status_code == 200
    found = _by_id(service.events())
    devices = [found[i][1]["device_id"] for i in ids]
    assert devices[0] == devices[1] != devices[2]
    assert found[ids[2]][1]["province"] == "VN-SG"


def test_datacenter_address_is_classified(service):
    event_id = f"dc-{_uid()}"
    assert browser_post(service.url, [page_view(event_id)], ip=DATACENTER).status_code == 200
    event = _by_id(service.events())[event_id][1]
    assert event["ip_class"] == "datacenter"
    assert "province" not in event


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (b"{not json", {}, 400, "not_json"),
        (b"[1, 2]", {}, 400, "bad_envelope"),
        (
            b'{"site_id": "news1.vn", "key": "pk_news1_0123456789", "events": {}}',
            {},
            400,
            "bad_envelope",
        ),
        (b'{"site_id": "nobody.vn", "key": "x", "events": []}', {}, 400, "unknown_site"),
        (b'{"site_id": 7, "key": "x", "events": []}', {}, 400, "unknown_site"),
        (b'{"site_id": "news1.vn", "key": "pk_wrong_key_000", "events": []}', {}, 401, "bad_key"),
        (
            b'{"site_id": "news1.vn", "key": "pk_news1_0123456789", "events": []}',
            {"Origin": "https://evil.example"},
            403,
            "origin_not_allowed",
        ),
        (
            b'{"site_id": "news1.vn", "key": "pk_news1_0123456789", "events": []}',
            {"Content-Type": "application/xml"},
            415,
            "unsupported_media_type",
        ),
        (
            orjson.dumps(
                {"site_id": "news1.vn", "key": NEWS_KEY, "events": [page_view("e")] * 501}
            ),
            {},
            413,
            "too_many_events",
        ),
        (b'{"site_id": "news1.vn", "pad": "' + b"x" * (1 << 20) + b'"}', {}, 413, "body_too_large"),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_write_nothing(service, body, headers, status, reason):
    base = {"Origin": ORIGIN, "Content-Type": "text/plain", "X-Forwarded-For": RESIDENTIAL_HN}
    answer = requests.post(
        f"{service.url}/v1/events", data=body, headers={**base, **headers}, timeout=30
    )
    assert answer.status_code == status
    assert answer.json()["error"] == reason
    assert answer.json()["detail"]


def test_post_without_origin_is_refused(service):
    body = orjson.dumps({"site_id": "news1.vn", "key": NEWS_KEY, "events": [page_view("x")]})
    answer = requests.post(f"{service.url}/v1/events", data=body, timeout=30)
    assert (answer.status_code, answer.json()["error"]) == (403, "origin_not_allowed")


def test_cors_preflight_per_outlet_origins(service):
    ok = requests.options(f"{service.url}/v1/events", headers={"Origin": "https://tv1.vn"})
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "https://tv1.vn"
    bad = requests.options(f"{service.url}/v1/events", headers={"Origin": "https://evil.example"})
    assert bad.status_code == 403


def test_signed_request_forwards_user_address_and_ua(service):
    event_id = f"s-{_uid()}"
    event = {
        "event_id": event_id,
        "type": "media",
        "ts": int(time.time() * 1000),
        "media_id": "live-1",
        "action": "start",
        "played_ms": 0,
        "play_id": "p1",
        "ua": "SmartTV Tizen",
        "ip": "14.160.130.1",
    }
    answer, _ = signed_post(service.url, orjson.dumps({"events": [event]}))
    assert answer.status_code == 200 and answer.json()["accepted"] == 1
    key, stored = _by_id(service.events())[event_id]
    assert stored["site_id"] == "tv1.vn"
    assert stored["province"] == "VN-SG" and stored["ip_class"] == "residential"
    assert stored["device_type"] == "tv" and "ip" not in stored
    assert key == f"tv1.vn/{stored['device_id']}".encode()


def test_signature_replay_skew_and_wrong_secret_are_refused(service):
    body = orjson.dumps({"events": []})
    first, headers = signed_post(service.url, body)
    assert first.status_code == 200
    again = requests.post(f"{service.url}/v1/events", data=body, headers=headers, timeout=30)
    assert (again.status_code, again.json()["error"]) == (403, "replayed_signature")
    old, _ = signed_post(service.url, body, ts=int(time.time()) - 301)
    assert (old.status_code, old.json()["error"]) == (401, "stale_timestamp")
    ahead, _ = signed_post(service.url, body, ts=int(time.time()) + 301)
    assert (ahead.status_code, ahead.json()["error"]) == (401, "stale_timestamp")
    within, _ = signed_post(service.url, body, ts=int(time.time()) - 250)
    assert within.status_code == 200
    wrong, _ = signed_post(service.url, body, secret=b"not-the-secret-at-all")
    assert (wrong.status_code, wrong.json()["error"]) == (401, "bad_signature")
    other, _ = signed_post(service.url, body, site="news1.vn")  # no secret registered
    assert (other.status_code, other.json()["error"]) == (401, "bad_signature")


def test_pixel_takes_one_event_from_the_query_string(service):
    event_id = f"px-{_uid()}"
    params = pixel_params(event_id)
    headers = {
        "User-Agent": BROWSER_UA,
        "X-Forwarded-For": RESIDENTIAL_HN,
        "Referer": "https://news1.vn/p",
    }
    answer = requests.get(f"{service.url}/v1/p.gif", params=params, headers=headers, timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Type"] == "image/gif"
    assert answer.content.startswith(b"GIF89a")
    stored = _by_id(service.events())[event_id][1]
    assert stored["ts"] == int(params["ts"]) and stored["province"] == "VN-HN"
    bad = requests.get(
        f"{service.url}/v1/p.gif",
        params={**params, "key": "pk_wrong_key_000"},
        headers=headers,
        timeout=30,
    )
    assert bad.status_code == 401
    foreign = requests.get(
        f"{service.url}/v1/p.gif",
        params=params,
        timeout=30,
        headers={**headers, "Referer": "https://evil.example/x"},
    )
    assert foreign.status_code == 403


def test_healthz_and_metrics_count_every_outcome(service):
    health = requests.get(f"{service.url}/healthz", timeout=10).json()
    assert health == {"status": "ok", "kafka": "up", "spooling": False, "spool_bytes": 0}
    text = requests.get(f"{service.url}/metrics", timeout=10).text
    assert 'pm_ingest_requests_refused_total{reason="replayed_signature"} 1' in text
    assert 'pm_ingest_events_rejected_total{reason="not_object"} 1' in text
    assert "pm_ingest_kafka_send_seconds_count" in text
    accepted = int(text.split("\npm_ingest_events_accepted_total ")[1].split()[0])
    assert accepted >= 8


# ------------------------------------------------------------- hostile input (issue 8)


def _signed_headers(stamp: str, body: bytes) -> dict[str, str]:
    signature = sign(TV_SECRET, "POST", "/v1/events", stamp, body)
    return {"X-PM-Site": "tv1.vn", "X-PM-Timestamp": stamp, "X-PM-Signature": signature}


@pytest.mark.parametrize(
    ("stamp", "named"),
    [("²", "'²'"), ("1" * 5000, "'1111111111111111…'"), ("-5", "'-5'"), ("17.5", "'17.5'")],
)
def test_a_timestamp_that_is_not_unix_seconds_is_a_401(service, stamp, named):
    body = orjson.dumps({"events": []})
    headers = {**_signed_headers(stamp, body), "Content-Type": "application/json"}
    raw = {k: v.encode() for k, v in headers.items()}  # "²" as UTF-8, as a client would
    answer = requests.post(f"{service.url}/v1/events", data=body, headers=raw, timeout=30)
    assert (answer.status_code, answer.json()["error"]) == (401, "bad_signature")
    assert (
        answer.json()["detail"]
        == f"X-PM-Timestamp must be Unix seconds (at most 12 ASCII digits), not {named}"
    )


def _browser_body(events: list) -> bytes:
    return encode({"site_id": "news1.vn", "key": NEWS_KEY, "events": events})


def _post(service, body: bytes, **headers: str) -> requests.Response:
    base = {"Origin": ORIGIN, "Content-Type": "text/plain", "X-Forwarded-For": RESIDENTIAL_HN}
    return requests.post(
        f"{service.url}/v1/events", data=body, headers={**base, **headers}, timeout=30
    )


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"[" * 255 + b"]" * 255, "body is not JSON: nested deeper than 66 levels"),
        (
            _browser_body([page_view("deep")])
            .replace(b'"url":', b'"url":' + b"[" * 255, 1)
            .replace(b'"https://news1.vn/a"', b'"x"' + b"]" * 255),
            "body is not JSON: nested deeper than 66 levels",
        ),
        (
            _browser_body([page_view("digits", ts=0)]).replace(b'"ts":0', b'"ts":' + b"1" * 5000),
            "body is not JSON: an integer has more than 4300 digits",
        ),
        (
            _browser_body([page_view("utf8")]).replace(b'news1.vn/a"', b'caf\xe9"'),
            "body is not JSON: a string is not valid UTF-8 (bytes b'\\xe9')",
        ),
    ],
    ids=["body-255-deep", "field-255-deep", "5000-digit-integer", "invalid-utf8"],
)
def test_unreadable_bodies_are_a_400_naming_why(service, body, detail):
    answer = _post(service, body)
    assert (answer.status_code, answer.json()) == (400, {"error": "not_json", "detail": detail})


def test_an_event_at_the_depth_limit_is_taken(service):
    event_id = f"d64-{_uid()}"
    nested = orjson.loads("[" * 63 + "]" * 63)  # the event is level 1: 64 in all
    answer = _post(service, _browser_body([page_view(event_id, extra=nested)]))
    assert (answer.status_code, answer.json()["accepted"]) == (200, 1)
    assert _by_id(service.events())[event_id][1]["extra"] == nested


def test_a_body_that_is_not_what_its_content_encoding_says_is_a_400(service):
    body = _browser_body([page_view("gz")])
    answer = _post(service, body, **{"Content-Encoding": "gzip"})
    assert answer.status_code == 400
    assert answer.json()["error"] == "bad_content_encoding"
    assert answer.json()["detail"] == "body cannot be decoded as Content-Encoding 'gzip' says"
    event_id = f"gz-{_uid()}"
    good = _post(service, gzip.compress(_browser_body([page_view(event_id)])),
                 **{"Content-Encoding": "gzip"})  # fmt: skip
    assert (good.status_code, good.json()["accepted"]) == (200, 1)


def test_integers_of_any_size_are_integers_as_in_the_pipeline(service):
    """Defect 7: the pipeline keeps engaged_ms 10**23 (capped); so does ingest,
    over a POST and over the pixel, and Kafka gets the exact digits."""
    post_id, pixel_id = f"big-{_uid()}", f"bigpx-{_uid()}"
    event = {**page_view(post_id), "type": "engagement", "engaged_ms": 10**23}
    answer = _post(service, _browser_body([event]))
    assert answer.status_code == 200 and answer.json() == {
        "accepted": 1, "rejected": [], "durable": "kafka"
    }  # fmt: skip
    params = {**pixel_params(pixel_id), "type": "engagement", "engaged_ms": "1" * 30}
    pixel = requests.get(f"{service.url}/v1/p.gif", params=params, timeout=30)
    assert (pixel.status_code, pixel.headers["X-PM-Accepted"]) == (200, "1")
    found = _by_id(service.events())  # read with the pipeline's reader: exact integers
    assert found[post_id][1]["engaged_ms"] == 10**23
    assert found[pixel_id][1]["engaged_ms"] == int("1" * 30)


@pytest.mark.parametrize("name", ["ts", "engaged_ms"])
def test_a_pixel_integer_of_5000_digits_is_a_400(service, name):
    params = {**pixel_params(f"px5k-{_uid()}"), "type": "engagement", name: "7" * 5000}
    answer = requests.get(f"{service.url}/v1/p.gif", params=params, timeout=30)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "bad_parameter",
        "detail": f"{name} is not an integer of at most 4300 digits",
    }
