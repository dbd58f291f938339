"""The spellings of a request's addresses that ingest forgets (collectors/ingest/
scrub.py), one by one, and the log filter; no service needed."""

from __future__ import annotations

import logging
import time

import pytest

from pressmeter.collectors.ingest.enrich import parse_ip
from pressmeter.collectors.ingest.scrub import (
    AddressScrub,
    LogScrub,
    connection_addresses,
    scrub_shapes,
)

SCRUB = AddressScrub([parse_ip("::ffff:81.23.99.2"), parse_ip(" 2405:4800:abcd::42%eth0")])


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("tv1.vn/box-81.23.99.2", "tv1.vn/box-[ip]"),
        ("https://x.vn/81.23.99.2/a", "https://x.vn/[ip]/a"),
        ("::ffff:81.23.99.2", "::ffff:[ip]"),
        ("::FFFF:5117:6302", "::FFFF:[ip]"),
        ("n=1360487170&h=0x51176302", "n=[ip]&h=0x[ip]"),
        ("81.23.99.20", "[ip]0"),  # inside a longer token: forgotten too
        ("2405:4800:abcd::42", "[ip]"),
        ("2405:4800:ABCD:0000:0000:0000:0000:0042", "[ip]"),
        ("2405:4800:abcd:0:0:0:0:42", "[ip]"),
        ("[2405:4800:abcd:0::42]:80", "[[ip]]:80"),  # partly compressed: parsed
        ("2405:4800:abcd::42%eth0", "[ip]%eth0"),
        ("24054800abcd00000000000000000042", "[ip]"),
        ("47879629719210874955421236586583425090", "[ip]"),
        ("81.23.99.3 and 2405:4800:abcd::43 stay", "81.23.99.3 and 2405:4800:abcd::43 stay"),
        ("12:30:45 https://news1.vn:8080/", "12:30:45 https://news1.vn:8080/"),
    ],
)
def test_every_spelling_of_the_addresses_is_replaced(text: str, expected: str):
    assert SCRUB.text(text) == expected
    assert SCRUB.found(text.encode()) is (text != expected)


def test_values_keys_and_numbers_are_replaced():
    event = {"n": 1360487170, "f": 1360487170.0, "ok": 7, "t": True, "81.23.99.2": ["x81.23.99.2"]}
    assert SCRUB.value(event) == {
        "n": "[ip]",
        "f": "[ip].0",
        "ok": 7,
        "t": True,
        "[ip]": ["x[ip]"],
    }


def test_connection_addresses_are_the_peer_and_every_forwarded_one():
    found = connection_addresses("::ffff:127.0.0.1", "81.23.99.5:4431, [2405:4800::1]:80, unknown")
    assert sorted(map(str, found)) == ["127.0.0.1", "2405:4800::1", "81.23.99.5"]


def test_refused_text_and_logs_lose_anything_shaped_like_an_address():
    assert scrub_shapes("from 81.23.99.9 or fe80::1%eth0, ok") == "from [ip] or [ip], ok"
    record = logging.LogRecord(
        "aiohttp.server",
        logging.ERROR,
        __file__,
        1,
        "Error handling request from %s",
        ("81.23.99.9",),
        None,
    )
    assert LogScrub(keep=("pressmeter.collectors.ingest.producer",)).filter(record)
    assert record.getMessage() == "Error handling request from [ip]"
    broker = logging.LogRecord(
        "pressmeter.collectors.ingest.producer",
        logging.WARNING,
        __file__,
        1,
        "%s",
        ("127.0.0.1:9092",),
        None,
    )
    LogScrub(keep=("pressmeter.collectors.ingest.producer",)).filter(broker)
    assert broker.getMessage() == "127.0.0.1:9092"


def test_hostile_text_costs_linear_time():
    started = time.process_time()
    for text in ("1." * 200_000, ":a" * 200_000, "a" * 400_000 + ":"):
        SCRUB.text(text)
        scrub_shapes(text)
    assert time.process_time() - started < 5  # quadratic would be hours
