"""Dead letters of the ingest service → rejected_events rows: well-formed ones keep
their own reason, malformed ones get the reason they break their schema."""

from __future__ import annotations

import orjson
import pytest

from pressmeter import schemas
from pressmeter.events import RejectReason
from pressmeter.pipelines.dead_letters import dead_letter_row

LETTER = {
    "reason": "personal_data",
    "detail": "url: an e-mail address",
    "site_id": "news1.vn",
    "received_at": 1_791_165_600_000,
    "raw": '{"url": "[ip]"}',
}


def test_the_schema_names_every_reject_reason_and_nothing_else() -> None:
    schema = schemas.load_schema(schemas.REJECTED_EVENT_SCHEMA)
    assert schema["self"]["name"] == "rejected_event"
    assert schema["properties"]["reason"]["enum"] == [r.value for r in RejectReason]


def test_a_well_formed_dead_letter_keeps_its_reason_site_and_time() -> None:
    row = dead_letter_row("kafka:pm.events.rejected.v1/2", 41, orjson.dumps(LETTER))
    assert row == {
        "source_id": "kafka:pm.events.rejected.v1/2",
        "position": 41,
        "stage": "ingest",
        "reason": "personal_data",
        "detail": "url: an e-mail address",
        "site_id": "news1.vn",
        "raw": '{"url": "[ip]"}',
        "refused_ms": 1_791_165_600_000,
    }


@pytest.mark.parametrize(
    ("value", "reason", "site", "detail"),
    [
        (b"{oops", "not_json", "", "malformed dead letter: not JSON: "),
        (b'"text"', "not_object", "", "malformed dead letter: a JSON str, not an object"),
        (orjson.dumps({k: v for k, v in LETTER.items() if k != "raw"}), "missing_field",
         "news1.vn", "malformed dead letter: record: 'raw' is a required property"),
        (orjson.dumps({**LETTER, "received_at": 1.5}), "wrong_type", "news1.vn",
         "malformed dead letter: received_at: 1.5 is not of type 'integer'"),
        (orjson.dumps({**LETTER, "received_at": -1}), "invalid_value", "news1.vn",
         "malformed dead letter: received_at: -1 is less than the minimum of 0"),
        (orjson.dumps({**LETTER, "reason": "spam"}), "invalid_value", "news1.vn",
         "malformed dead letter: reason: 'spam' is not one of "),
        (orjson.dumps({**LETTER, "site_id": 7}), "wrong_type", "",
         "malformed dead letter: site_id: 7 is not of type 'string'"),
    ],
)  # fmt: skip
def test_a_malformed_dead_letter_is_stored_with_the_reason_it_breaks(
    value: bytes, reason: str, site: str, detail: str
) -> None:
    row = dead_letter_row("kafka:pm.events.rejected.v1/0", 3, value)
    assert (row["reason"], row["site_id"], row["stage"], row["refused_ms"]) == (
        reason,
        site,
        "ingest",
        0,
    )
    assert row["detail"].startswith(detail), row["detail"]
    assert row["raw"] == value.decode()
