"""The ingest service's dead letters (`pm.events.rejected.v1`) as rejected_events rows.

The ingest service refuses an event with one of the closed set of reasons and
writes a dead letter (schemas/vn.pressmeter/rejected_event) instead of the
event. A Kafka batch run reads a bounded slice of that topic beside the events
topic, under the same ledger rules, and stores each dead letter in
rejected_events with stage 'ingest', so one table and one query (`pressmeter
rejects`) answer for both stages. A dead letter that does not match its schema
is not lost either: it is stored as rejected at ingest with the reason it breaks.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import apache_beam as beam
import jsonschema
import orjson

from pressmeter import schemas
from pressmeter.events import RejectReason
from pressmeter.pipelines.parse import RAW_LIMIT, REJECTED_COLUMNS, LineBatch

__all__ = ["DEAD_LETTER_COLUMNS", "INGEST", "DeadLetterRowsFn", "dead_letter_row"]

INGEST = "ingest"
DEAD_LETTER_COLUMNS = [*REJECTED_COLUMNS.names, "stage", "refused_ms"]
# The JSON Schema keyword a malformed dead letter breaks → the reason it is stored with.
_REASON_OF_KEYWORD = {"required": RejectReason.MISSING_FIELD, "type": RejectReason.WRONG_TYPE}


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = schemas.load_schema(schemas.REJECTED_EVENT_SCHEMA)
    return jsonschema.validators.validator_for(schema)(schema)


def _text(value: str) -> str:
    return value if len(value) <= RAW_LIMIT else value[:RAW_LIMIT] + "…[truncated]"


def dead_letter_row(source_id: str, position: int, value: bytes) -> dict[str, Any]:
    """The rejected_events row of one dead letter: its own reason, detail, site and
    time; or, if it is malformed, the reason it breaks its schema."""
    row = {"source_id": source_id, "position": position, "stage": INGEST, "refused_ms": 0}
    try:
        record = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return row | _malformed(RejectReason.NOT_JSON, f"not JSON: {exc}", "", value)
    if not isinstance(record, dict):
        kind = type(record).__name__
        return row | _malformed(RejectReason.NOT_OBJECT, f"a JSON {kind}, not an object", "", value)
    error = jsonschema.exceptions.best_match(_validator().iter_errors(record))
    if error is not None:
        site = record.get("site_id")
        reason = _REASON_OF_KEYWORD.get(error.validator, RejectReason.INVALID_VALUE)
        where = ".".join(map(str, error.absolute_path)) or "record"
        detail = f"{where}: {error.message}"
        return row | _malformed(reason, detail, site if isinstance(site, str) else "", value)
    return row | {
        "reason": record["reason"],
        "detail": _text(record["detail"]),
        "site_id": record["site_id"],
        "raw": _text(record["raw"]),
        "refused_ms": record["received_at"],
    }


def _malformed(reason: RejectReason, detail: str, site_id: str, value: bytes) -> dict[str, Any]:
    return {
        "reason": reason.value,
        "detail": _text(f"malformed dead letter: {detail}"),
        "site_id": site_id,
        "raw": _text(value.decode("utf-8", errors="replace")),
    }


class DeadLetterRowsFn(beam.DoFn):
    """LineBatch of dead letters → one rejected_events row (a dict) per record."""

    def process(self, batch: LineBatch) -> Iterator[dict[str, Any]]:
        for offset, value in enumerate(batch.lines, batch.first_position):
            yield dead_letter_row(batch.source_id, offset, value)
