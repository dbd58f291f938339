"""HTTP fuzz of the ingest API (issue 8): schemathesis reads the OpenAPI description
the running service publishes at /openapi.json and generates requests for every
operation, valid and invalid by that description, on the real Kafka.

Generated requests are mostly refused early (unknown site, no key), so each is
also sent as an authenticated browser or a signed server would send it, with the
generated body: that is what reaches the event steps. The property: no 5xx but a
503 `spool_full`; every answer conforms to the description (status, media type,
body schema); the service is healthy after; and every event-level refusal it
answered is on `pm.events.rejected.v1` with its reason, no more, no fewer.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from ingest_helpers import NEWS_KEY, ORIGIN, RESIDENTIAL_HN, TV_SECRET, browser_post, page_view
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pressmeter.collectors.ingest.auth import sign
from pressmeter.collectors.ingest.openapi import openapi_description
from pressmeter.jsontext import encode

pytestmark = pytest.mark.kafka

# Requests per run (each generated case is sent by every one of SENDERS); a
# variable lowers it for a quick local try, CI runs the default.
REQUESTS = int(os.environ.get("PM_FUZZ_REQUESTS", "10000"))
CHECKS = [status_code_conformance, content_type_conformance, response_schema_conformance]
SENDERS = ("as generated", "signed", "browser")


class Fuzzer:
    """Sends a generated case as one of `SENDERS` and tallies what came back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.session = requests.Session()
        self.statuses: Counter[int] = Counter()
        self.rejected: Counter[str] = Counter()  # event-level refusals answered
        self.refusals: Counter[str] = Counter()  # whole requests refused
        self.nonces = itertools.count()

    def send(self, case: Any, sender: str) -> schemathesis.Response:
        path, body = case.operation.path, case.body
        if sender == "signed" and case.method == "POST" and path == "/v1/events":
            if isinstance(body, dict):
                body = {**body, "nonce": next(self.nonces)}  # one signature per request
            raw = body.encode() if isinstance(body, str) else encode(body)
            stamp = str(int(time.time()))
            headers = {
                "X-PM-Site": "tv1.vn",
                "X-PM-Timestamp": stamp,
                "X-PM-Signature": sign(TV_SECRET, "POST", path, stamp, raw),
                "Content-Type": case.media_type or "application/json",
            }
            sent = self.session.post(self.url + path, data=raw, headers=headers, timeout=30)
            return schemathesis.Response.from_any(sent)
        if sender != "as generated":  # a browser of news1.vn
            case.headers = {
                **(case.headers or {}),
                "Origin": ORIGIN,
                "X-Forwarded-For": RESIDENTIAL_HN,
            }
            if path == "/v1/p.gif":
                case.query = {**(case.query or {}), "site_id": "news1.vn", "key": NEWS_KEY}
            elif isinstance(body, dict):
                case.body = {**body, "site_id": "news1.vn", "key": NEWS_KEY}
        return case.call(base_url=self.url, session=self.session, timeout=30)

    def check(self, case: Any, response: schemathesis.Response) -> None:
        status = response.status_code
        self.statuses[status] += 1
        if status >= 500:
            assert status == 503, f"{case.method} {case.path}: {status} {response.text[:200]}"
            assert response.json()["error"] == "spool_full", response.text
        if status >= 400 and response.content:
            self.refusals[response.json()["error"]] += 1
        case.validate_response(response, checks=CHECKS)
        if status != 200:
            return
        if case.operation.path == "/v1/p.gif":  # headers: lowercase names, lists of values
            self.rejected.update(response.headers.get("x-pm-rejected", []))
        elif case.method == "POST":
            self.rejected.update(item["reason"] for item in response.json()["rejected"])


def test_fuzzed_requests_get_no_5xx_and_every_reject_is_on_the_topic(service):
    published = requests.get(f"{service.url}/openapi.json", timeout=10)
    assert published.json() == openapi_description()
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    # Every endpoint but the description itself, which schemathesis leaves out.
    assert {op.label for op in operations} == {
        "POST /v1/events",
        "OPTIONS /v1/events",
        "GET /v1/p.gif",
        "GET /healthz",
        "GET /metrics",
    }
    by_label = {op.label: op for op in operations}

    def cases(label: str, mode: GenerationMode, weight: int) -> list[st.SearchStrategy]:
        return [by_label[label].as_strategy(mode)] * weight

    positive, negative = GenerationMode.POSITIVE, GenerationMode.NEGATIVE
    # Weighted to the operations that take input; a negative case (invalid by the
    # description) costs several times a positive one to generate.
    generated = st.one_of(
        *cases("POST /v1/events", positive, 5),
        *cases("GET /v1/p.gif", positive, 3),
        *cases("OPTIONS /v1/events", positive, 1),
        *cases("GET /healthz", positive, 1),
        *cases("GET /metrics", positive, 1),
        *cases("POST /v1/events", negative, 1),
        *cases("GET /v1/p.gif", negative, 1),
    )
    fuzzer = Fuzzer(service.url)
    started = time.monotonic()

    @settings(
        max_examples=-(-REQUESTS // len(SENDERS)),
        deadline=None,
        database=None,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(generated)
    def fuzz(case: Any) -> None:
        for sender in SENDERS:  # "browser" last: it sets the case's site and key
            fuzzer.check(case, fuzzer.send(case, sender))

    fuzz()
    elapsed = time.monotonic() - started
    print(
        f"fuzz: {fuzzer.statuses.total()} requests in {elapsed:.1f} s; statuses "
        f"{dict(fuzzer.statuses)}; refused {dict(fuzzer.refusals)}; events {dict(fuzzer.rejected)}"
    )
    assert fuzzer.statuses.total() >= REQUESTS
    # The fuzz reached the event steps, not only the early refusals.
    assert fuzzer.statuses[200] > REQUESTS // 5 and fuzzer.rejected.total() > REQUESTS // 50

    health = requests.get(f"{service.url}/healthz", timeout=10)
    assert (health.status_code, health.json()["status"], health.json()["kafka"]) == (
        200,
        "ok",
        "up",
    )
    after = browser_post(service.url, [page_view("after-fuzz")])
    assert (after.status_code, after.json()["accepted"]) == (200, 1)
    on_topic = Counter(value["reason"] for _, value, _ in service.rejected())
    assert on_topic == fuzzer.rejected
