"""Rate limits of the ingest service (collectors/ingest/ratelimit.py) over real
HTTP and real Kafka: a service started with small token buckets and one worker
(the configured rates are divided by the number of workers), so the expected
answers are exact. A refused request is answered 429 with the limit's name,
counted in /metrics, writes nothing to Kafka, and costs no tokens; once the
bucket has refilled, requests are accepted again. Slow and greedy clients
(stalled headers and bodies, hundreds of connections from one address) are
timed out and capped, so other clients are still answered."""

from __future__ import annotations

import http.client
import socket
import time
import uuid

import orjson
import pytest
import requests
from ingest_helpers import (
    BROWSER_UA,
    NEWS_KEY,
    ORIGIN,
    RESIDENTIAL_HN,
    Topics,
    browser_post,
    metrics,
    page_view,
    pixel_params,
    signed_post,
    write_config,
)

from pressmeter.collectors.ingest.app import build_service
from pressmeter.collectors.ingest.config import load_config

OUTLET_REFUSED = 'pm_ingest_requests_refused_total{reason="rate_limited_outlet"}'
CLIENT_REFUSED = 'pm_ingest_requests_refused_total{reason="rate_limited_client"}'
ACCEPTED = "pm_ingest_events_accepted_total"


def _ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}-{uuid.uuid4().hex[:12]}" for _ in range(n)]


def _accepted(answer: requests.Response, n: int) -> None:
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"accepted": n, "rejected": [], "durable": "kafka"}


def _refused(answer: requests.Response, reason: str) -> None:
    assert answer.status_code == 429, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.headers["Retry-After"] == "1"
    body = answer.json()
    assert body["error"] == reason and body["detail"]


def _pixel(url: str, event_id: str, ip: str) -> requests.Response:
    params = pixel_params(event_id)
    headers = {"User-Agent": BROWSER_UA, "X-Forwarded-For": ip, "Referer": "https://news1.vn/p"}
    return requests.get(f"{url}/v1/p.gif", params=params, headers=headers, timeout=30)


def _stored_ids(ingest) -> tuple[set[str], list]:
    return {value["event_id"] for _, value, _ in ingest.events()}, ingest.rejected()


@pytest.mark.kafka
def test_outlet_limit_is_per_outlet_in_events_and_refills(make_ingest):
    # news1.vn: 10 events saved up, 1 event/s more. Every request comes from a
    # different address: the outlet's bucket is shared by all its clients. The
    # refused requests ask for 9 events, so they stay refused on a slow machine
    # unless 5 s (the second) and 9 s (the fourth) pass after the first request.
    ingest = make_ingest(limits={"outlet_events_per_s": 1.0, "outlet_burst": 10.0})
    first, over, rest, tv, again, later = (
        _ids("o1", 6),
        _ids("o2", 9),
        _ids("o3", 4),
        _ids("tv", 5),
        _ids("o4", 9),
        _ids("o5", 3),
    )

    def post(ids: list[str], ip: str) -> requests.Response:
        return browser_post(ingest.url, [page_view(i) for i in ids], ip=ip)

    _accepted(post(first, "14.160.0.1"), 6)  # 4 tokens left
    _refused(post(over, "14.160.0.2"), "rate_limited_outlet")  # 9 > 4
    _accepted(post(rest, "14.160.0.3"), 4)  # the refusal cost nothing: 4 fit
    events = [{**page_view(i), "ip": RESIDENTIAL_HN, "ua": "SmartTV Tizen"} for i in tv]
    answer, _ = signed_post(ingest.url, orjson.dumps({"events": events}))
    _accepted(answer, 5)  # tv1.vn has its own bucket
    _refused(post(again, "14.160.0.4"), "rate_limited_outlet")  # news1.vn: ~0 left
    time.sleep(3.2)  # 1 event/s: at least 3.2 tokens by now
    _accepted(post(later, "14.160.0.5"), 3)

    counts = metrics(ingest.url)
    assert counts[OUTLET_REFUSED] == 2
    assert CLIENT_REFUSED not in counts
    assert counts[ACCEPTED] == 6 + 4 + 5 + 3
    stored, rejected = _stored_ids(ingest)
    assert stored == {*first, *rest, *tv, *later}  # nothing of the refused requests
    assert rejected == []


@pytest.mark.kafka
def test_client_limit_is_per_address_in_requests_and_refills(make_ingest):
    # Each client address: 3 requests saved up, 1 request every 4 s more, whatever
    # the outlet. Slow refill keeps the refusals exact on a slow machine: the
    # first two stay refused unless 4 s pass after a's first request, the last
    # unless 8 s do.
    ingest = make_ingest(limits={"client_requests_per_s": 0.25, "client_burst": 3.0})
    a, b = RESIDENTIAL_HN, "14.160.200.9"
    ok_a, refused_a, ok_b, later_a, refused_later = (
        _ids("a", 3),
        _ids("ra", 2),
        _ids("b", 1),
        _ids("la", 1),
        _ids("rl", 1),
    )

    for event_id in ok_a:
        _accepted(browser_post(ingest.url, [page_view(event_id)], ip=a), 1)
    _refused(browser_post(ingest.url, [page_view(refused_a[0])], ip=a), "rate_limited_client")
    _refused(_pixel(ingest.url, refused_a[1], a), "rate_limited_client")  # the pixel too
    _accepted(browser_post(ingest.url, [page_view(ok_b[0])], ip=b), 1)  # another address
    time.sleep(4.05)  # 1 request every 4 s: one more for a
    _accepted(browser_post(ingest.url, [page_view(later_a[0])], ip=a), 1)
    _refused(browser_post(ingest.url, [page_view(refused_later[0])], ip=a), "rate_limited_client")

    counts = metrics(ingest.url)
    assert counts[CLIENT_REFUSED] == 3
    assert OUTLET_REFUSED not in counts
    assert counts[ACCEPTED] == 5
    stored, rejected = _stored_ids(ingest)
    assert stored == {*ok_a, *ok_b, *later_a}
    assert rejected == []


def test_configured_rates_are_divided_among_workers(tmp_path):
    limits = {
        "outlet_events_per_s": 6.0,
        "outlet_burst": 12.0,
        "client_requests_per_s": 2.0,
        "client_burst": 8.0,
    }
    topics = Topics("127.0.0.1:1", "unused", "unused.rejected")  # no Kafka needed here
    config = load_config(write_config(tmp_path, 1, topics, limits=limits))
    service = build_service(config, worker=1, workers=2)
    outlets, clients = service.limits.outlets, service.limits.clients
    assert (outlets.rate, outlets.burst, clients.rate, clients.burst) == (3.0, 6.0, 1.0, 4.0)


_STALLED_BODY = (
    b"POST /v1/events HTTP/1.1\r\nHost: x\r\nOrigin: https://news1.vn\r\n"
    b'Content-Type: text/plain\r\nContent-Length: 10000\r\n\r\n{"site_id": "news1.vn"'
)
_STALLED_HEADERS = b"POST /v1/events HTTP/1.1\r\nHost: x\r\nOrigin: https://ne"


def _open_stalled(port: int, source: str, data: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock.sendall(data)
    return sock


def _answer(sock: socket.socket, timeout: float) -> bytes:
    """What the service sent before closing, b"" if it closed without a word."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    return data


def _post_from(port: int, source: str, event_id: str) -> tuple[int, float]:
    body = orjson.dumps({"site_id": "news1.vn", "key": NEWS_KEY, "events": [page_view(event_id)]})
    started = time.monotonic()
    connection = http.client.HTTPConnection(
        "127.0.0.1", port, timeout=10, source_address=(source, 0)
    )
    connection.request(
        "POST", "/v1/events", body=body, headers={"Origin": ORIGIN, "Content-Type": "text/plain"}
    )
    status = connection.getresponse().status
    connection.close()
    return status, time.monotonic() - started


@pytest.mark.kafka
def test_stalled_clients_are_capped_and_timed_out_and_others_answered(make_ingest):
    """One address opens 300 connections that stall (10 mid-headers, 290 mid-body)
    against a worker allowed 400 open files (the limit that made 2,200 stalled
    uploads take a service down): it keeps 20 (max_client_connections), the other
    280 are answered 429 at once; the 10 stalled headers are closed after the
    header timeout, the 10 stalled bodies answered 408 after the body timeout;
    meanwhile another address gets its 5 requests answered 200 at once."""
    ingest = make_ingest(
        start=False,
        server={"header_timeout_s": 2.0, "body_timeout_s": 2.0, "max_client_connections": 20},
    )
    ingest.open_files = 400
    ingest.start()
    greedy, other = "127.66.0.2", "127.66.0.3"
    opened = time.monotonic()
    stalled = [_open_stalled(ingest.port, greedy, _STALLED_HEADERS) for _ in range(10)]
    stalled += [_open_stalled(ingest.port, greedy, _STALLED_BODY) for _ in range(290)]
    valid = [_post_from(ingest.port, other, f"ok-{uuid.uuid4().hex[:8]}") for _ in range(5)]
    answers = [_answer(sock, timeout=10) for sock in stalled]
    took = time.monotonic() - opened

    assert [status for status, _ in valid] == [200] * 5
    assert max(seconds for _, seconds in valid) < 2.0  # not waiting for the stalled ones
    assert answers[:10] == [b""] * 10  # headers never complete: closed without an answer
    assert all(a.startswith(b"HTTP/1.1 408 ") and b'"body_timeout"' in a for a in answers[10:20])
    refused = [a for a in answers[20:] if a]  # or reset before the answer was read
    assert all(a.startswith(b"HTTP/1.1 429 ") and b"too_many_connections" in a for a in refused)
    assert took < 10  # every stalled connection was let go within the timeouts
    counts = metrics(ingest.url)
    assert counts["pm_ingest_connections_refused_total"] == 280
    assert counts['pm_ingest_requests_refused_total{reason="body_timeout"}'] == 10
