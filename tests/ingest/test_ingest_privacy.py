"""Privacy: the client addresses a request came from or claimed never leave it.

Distinctive addresses, in every spelling, go through every path: a browser POST
through a trusted proxy (X-Forwarded-For) and straight from its own peer
address, the pixel, signed requests with `ip` (IPv4, IPv4-mapped IPv6, a
leading space, IPv6), refused events, a malformed request (aiohttp logs its
peer), and a service whose Kafka is away (the spool). Then everything written
is scanned for each address in text (any letter case), integer and hex forms:
Kafka keys and values of both topics, the spool and every file of the service,
its log, and, after `pipeline batch --kafka` into a database on the ClickHouse
server, every table of that database. Expected hits: 0.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import subprocess
import time
import uuid
from pathlib import Path

import orjson
import pytest
import requests
from ingest_helpers import (
    BROWSER_UA,
    NEWS_KEY,
    ORIGIN,
    REPO,
    Topics,
    browser_post,
    free_port,
    page_view,
    pixel_params,
    signed_post,
)
from support import empty_store

from pressmeter.store import close_stores, open_store

pytestmark = [pytest.mark.kafka, pytest.mark.clickhouse]

SIGNED_V4 = "81.23.99.1"  # in a device_id: the Kafka key must not keep it
MAPPED = "::ffff:81.23.99.2"  # the ip field; its IPv4 text in a URL
SPACED = " 81.23.99.3"  # a leading space
SIGNED_V6 = "2405:4800:abcd::42"
FORWARDED = "81.23.99.5"  # X-Forwarded-For from the trusted proxy
PIXEL = "81.23.99.6"
PEER = "127.83.99.7"  # a loopback source address: the service sees it as the peer
BAD_PEER = "127.83.99.8"  # sends a malformed request: aiohttp logs its peer
SPOOLED = "81.23.99.9"
ADDRESSES = [SIGNED_V4, MAPPED, SPACED, SIGNED_V6, FORWARDED, PIXEL, PEER, BAD_PEER, SPOOLED]


def _forms(text: str) -> list[bytes]:
    """The address as text (compressed, exploded), integer and hex, lower case."""
    address = ipaddress.ip_address(text.strip())
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    width = 8 if address.version == 4 else 32
    texts = {str(address), address.exploded, str(int(address)), f"{int(address):0{width}x}"}
    return [t.encode() for t in texts]


def _ts() -> int:
    return int(time.time() * 1000) - 60_000


def _signed_events(tag: str) -> list[dict]:
    """Signed events whose own text spells their address (and the others') in many ways."""
    v6 = ipaddress.ip_address(SIGNED_V6)
    tv = {"ua": "SmartTV Tizen"}
    return [
        {**page_view(f"{tag}-s1", _ts(), device_id=f"box-{SIGNED_V4}"), "ip": SIGNED_V4, **tv},
        {**page_view(f"{tag}-s2", _ts(), url="https://tv1.vn/81.23.99.2/x"), "ip": MAPPED, **tv},
        {**page_view(f"{tag}-s3", _ts(), url="https://tv1.vn/?c=81.23.99.3"), "ip": SPACED, **tv},
        {
            **page_view(f"{tag}-s4", _ts(), url=f"https://tv1.vn/{v6.exploded.upper()}"),
            "ip": f"{SIGNED_V6}%eth0",
            **tv,
            "ref": f"http://[{SIGNED_V6}]/ {int(v6)} {int(v6):032x}",
        },
        {**page_view(f"{tag}-s5", _ts(), type="click", url=f"https://tv1.vn/{SIGNED_V4}")},
        {"ip": SIGNED_V4, "note": f"not an event, from {SIGNED_V4}"},
    ]


def _browser_events(tag: str, ip: str) -> list[dict]:
    address = ipaddress.ip_address(ip)
    return [
        page_view(f"{tag}-b1", _ts(), device_id=f"dev-{ip}"),
        page_view(
            f"{tag}-b2", _ts(), url=f"https://news1.vn/?n={int(address)}&h=0x{int(address):08x}"
        ),
        {k: v for k, v in page_view(f"{tag}-b3", _ts()).items() if k != "device_id"},  # cookieless
        page_view(f"{tag}-b4", _ts(), type="click", url=f"https://news1.vn/{ip}"),  # refused
    ]


def _post_from(url: str, source: str, body: bytes) -> int:
    """A browser POST from the loopback address `source` (the service's peer)."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30, source_address=(source, 0))
    headers = {"Origin": ORIGIN, "Content-Type": "text/plain", "User-Agent": BROWSER_UA}
    connection.request("POST", "/v1/events", body=body, headers=headers)
    status = connection.getresponse().status
    connection.close()
    return status


def _malformed_from(url: str, source: str) -> bytes:
    """A request aiohttp cannot parse: it answers 400 and logs "Error handling
    request from <peer>"."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30, source_address=(source, 0)) as s:
        s.sendall(b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n")
        return s.recv(1000)


def _send_everything(url: str, tag: str) -> None:
    answer, _ = signed_post(url, orjson.dumps({"events": _signed_events(tag)}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == 4, answer.text
    answer = browser_post(url, _browser_events(tag, FORWARDED), ip=FORWARDED)
    assert answer.status_code == 200 and answer.json()["accepted"] == 3
    params = {**pixel_params(f"{tag}-p1"), "url": f"https://news1.vn/{PIXEL}", "device_id": PIXEL}
    headers = {"User-Agent": BROWSER_UA, "X-Forwarded-For": PIXEL, "Referer": "https://news1.vn/"}
    pixel = requests.get(f"{url}/v1/p.gif", params=params, headers=headers, timeout=30)
    assert pixel.status_code == 200 and pixel.headers["X-PM-Rejected"] == "personal_data"
    params = {**pixel_params(f"{tag}-p2"), "url": f"https://news1.vn/{PIXEL}"}
    pixel = requests.get(f"{url}/v1/p.gif", params=params, headers=headers, timeout=30)
    assert pixel.headers["X-PM-Accepted"] == "1"
    body = {"site_id": "news1.vn", "key": NEWS_KEY, "events": _browser_events(f"{tag}-d", PEER)}
    assert _post_from(url, PEER, orjson.dumps(body)) == 200
    assert _malformed_from(url, BAD_PEER).startswith(b"HTTP/1.0 400 Bad Request")


def _clickhouse_text(store_url: str) -> bytes:
    """Every row of every table of the store's database, as text (aggregate
    states, which hold hashes, as their final values)."""
    database = store_url.rsplit("/", 1)[1]
    store = open_store(store_url, migrate=False)
    columns: dict[str, list[str]] = {}
    for table, name, kind in store.rows(
        f"SELECT table, name, type FROM system.columns WHERE database = '{database}'"
    ):
        final = kind.startswith("AggregateFunction")
        columns.setdefault(table, []).append(f"finalizeAggregation({name})" if final else name)
    assert len(columns) >= 3, columns
    rows = [
        repr(store.rows(f"SELECT {', '.join(names)} FROM {database}.{table}"))
        for table, names in columns.items()
    ]
    close_stores()
    return "\n".join(rows).encode()


def test_no_client_address_anywhere_in_any_form(make_ingest, tmp_path: Path, topics: Topics):
    tag = uuid.uuid4().hex[:8]
    ingest = make_ingest(server={"workers": 1})
    _send_everything(ingest.url, tag)
    dead = Topics(f"127.0.0.1:{free_port()}", topics.events, topics.rejected)
    spooling = make_ingest(dead, kafka={"ack_timeout_ms": 300})
    answer = browser_post(spooling.url, _browser_events(f"{tag}-x", SPOOLED), ip=SPOOLED)
    assert answer.json()["durable"] == "spool"
    answer, _ = signed_post(spooling.url, orjson.dumps({"events": _signed_events(f"{tag}-y")}))
    assert answer.json()["durable"] == "spool"
    spooling.kill9()
    ingest.stop()

    records = ingest.events() + ingest.rejected()
    stored = {v.get("event_id") for _, v, _ in ingest.events()}
    assert len(stored) == 4 + 3 + 1 + 3  # signed, forwarded browser, pixel, peer browser
    assert "tv1.vn/box-[ip]" in {k.decode() for k, _, _ in ingest.events()}
    assert "box-[ip]" in {v["device_id"] for _, v, _ in ingest.events()}
    assert len(ingest.rejected()) == 2 + 1 + 1 + 1  # signed 2, forwarded 1, pixel 1, peer 1
    kafka = b"\n".join((k or b"") + b"\t" + orjson.dumps(v) for k, v, _ in records)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".wal" and p.stat().st_size for p in files)
    assert "Error handling request from [ip]" in ingest.log()

    with empty_store("server", tmp_path) as store_url:
        done = _pipeline_batch(ingest.topics, store_url, tag)
        assert "read        11 records" in done, done
        assert f"5 dead letters of {topics.rejected} stored" in done, done
        clickhouse = _clickhouse_text(store_url)

    blobs = {"kafka": kafka, "clickhouse": clickhouse}
    blobs.update({str(p.relative_to(tmp_path)): p.read_bytes() for p in files})
    hits = [
        (address, form, where)
        for address in ADDRESSES
        for form in _forms(address)
        for where, blob in blobs.items()
        if form in blob.lower()
    ]
    assert hits == []


def _pipeline_batch(topics: Topics, store_url: str, tag: str) -> str:
    """`pressmeter pipeline batch --kafka` from the test's topics (events and dead
    letters) into the store."""
    done = subprocess.run(
        [
            str(REPO / ".venv/bin/pressmeter"),
            "pipeline",
            "batch",
            "--kafka",
            topics.bootstrap,
            "--topic",
            topics.events,
            "--rejected-topic",
            topics.rejected,
            "--group",
            f"g-{tag}",
            "--store",
            store_url,
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
