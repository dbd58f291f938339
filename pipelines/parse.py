"""Step 1 of docs/standard.md §2: decode and validate raw lines; refuse with a reason.

Elements are batches (`LineBatch` in, Arrow tables out): a one-event-per-element
pipeline spends its time in the runner, not in the work (about 15,000 events/s
against several hundred thousand for the batched form).

Two paths give the same result. The fast one decodes and validates each line
with msgspec types compiled from the event schema, then checks the patterns and
the ts window column-wise. Any line it refuses goes to the exact one, a plain
JSON decode and the per-event validator, which names the reason. Tests hold the
two paths to the same answers.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from clickhouse_cityhash.cityhash import CityHash64

from pressmeter.calendar import LocalCalendar
from pressmeter.events import Invalid, RejectReason, event_validator
from pressmeter.jsontext import NotJson, read_json
from pressmeter.metrics import DIMENSIONS, NONE_VALUE
from pressmeter.pipelines.coders import typed_outputs
from pressmeter.pipelines.ivt import BotMatcher
from pressmeter.pipelines.memo import Memo
from pressmeter.pipelines.referrers import url_host

__all__ = [
    "AGENTS",
    "AGENT_COLUMNS",
    "DIMENSION_FIELDS",
    "EVENT_COLUMNS",
    "REJECTED",
    "REJECTED_COLUMNS",
    "EventParser",
    "LineBatch",
    "ParseEvents",
]

REJECTED = "rejected"
AGENTS = "agents"
RAW_LIMIT = 65_536
VALUE_LIMIT = 2**32 - 1

# Event fields that are §8 dimensions as they are (the source is derived).
DIMENSION_FIELDS = tuple(field for field in DIMENSIONS.values() if field)
# The compact row of a kept event: what the metrics and the audit trail need.
# Repetitive strings are dictionary-encoded: batches cross the shuffle and an
# id-sized source_id on every row would double what each row weighs there.
_LABEL = pa.dictionary(pa.int32(), pa.string())
EVENT_COLUMNS = pa.schema(
    [
        ("site_id", _LABEL),
        ("day", pa.int32()),
        ("device_id", pa.string()),
        ("ts", pa.int64()),
        ("event_id", pa.string()),
        ("received_at", pa.int64()),
        ("type", _LABEL),
        ("ua_ivt", pa.uint8()),
        ("ip_class", _LABEL),
        ("value_ms", pa.uint32()),
        ("action", _LABEL),
        ("source_id", _LABEL),
        ("position", pa.uint64()),
        # The §8 dimensions ('' when missing, empty or the literal `(none)`), the
        # hosts the source class is read from, and the user agent by its id.
        *((name, _LABEL) for name in DIMENSION_FIELDS),
        ("referrer_host", _LABEL),
        ("url_host", _LABEL),
        ("ua_id", pa.uint64()),
        # Read order across the run's sources: the dedup tie-break "first one read".
        ("read_order", pa.uint64()),
    ]
)
REJECTED_COLUMNS = pa.schema(
    [
        ("source_id", pa.string()),
        ("position", pa.uint64()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("site_id", pa.string()),
        ("raw", pa.string()),
    ]
)
AGENT_COLUMNS = pa.schema([("ua_id", pa.uint64()), ("ua", pa.string())])
_VALUE_FIELD = {"page_view": None, "engagement": "engaged_ms", "media": "played_ms"}


@dataclass(frozen=True)
class LineBatch:
    """Consecutive records of one source: `lines[i]` sits at `first_position + i`."""

    source_index: int
    source_id: str
    first_position: int
    lines: list[bytes]

    @property
    def nbytes(self) -> int:
        """About the size of the batch (for Beam's metrics; see pipelines/coders.py)."""
        return len(self.lines) * (len(self.lines[0]) if self.lines else 0)


def _clamped(values: list[int]) -> np.ndarray:
    """Values clamped to the uint32 column; any JSON integer is valid, even 10**23."""
    try:
        wide = np.fromiter(values, np.uint64, len(values))
    except OverflowError:
        wide = np.array([min(v, VALUE_LIMIT) for v in values], dtype=np.uint64)
    return np.minimum(wide, VALUE_LIMIT).astype(np.uint32)


def dimension_value(value: object) -> str:
    """A §8 dimension as stored: '' for a missing or empty field or `(none)`."""
    return "" if not value or value == NONE_VALUE else value  # type: ignore[return-value]


def _dimension(events: list, name: str) -> pa.DictionaryArray:
    values = pa.array(list(map(dimension_value, map(operator.attrgetter(name), events))))
    return pc.dictionary_encode(values)


class AgentIds:
    """ua → ua_id, the 64-bit CityHash v1.0.2 of its UTF-8 bytes (the store's own
    `cityHash64(ua)`), each distinct agent hashed once; and the agents hashed
    since the last `take_new`, to be stored once in `user_agents`."""

    def __init__(self) -> None:
        self._new: dict[str, int] = {}
        self._ids = Memo(self._hash)

    def _hash(self, ua: str) -> int:
        self._new[ua] = CityHash64(ua.encode("utf-8", "surrogatepass"))
        return self._new[ua]

    def ids(self, agents: list[str]) -> np.ndarray:
        return np.fromiter(self._ids(agents), np.uint64, len(agents))

    def take_new(self) -> pa.Table:
        """The agents hashed since the last call, as `user_agents` rows."""
        new, self._new = self._new, {}
        return pa.table({"ua_id": list(new.values()), "ua": list(new)}, schema=AGENT_COLUMNS)


def _raw_text(line: bytes) -> str:
    """The line as text; a byte that is not UTF-8 is written `\\xNN`, so the stored
    text shows exactly which bytes were bad."""
    text = line.rstrip(b"\r\n").decode("utf-8", errors="backslashreplace")
    return text if len(text) <= RAW_LIMIT else text[:RAW_LIMIT] + "…[truncated]"


class EventParser:
    """Turns line batches into kept-row and rejected-row tables."""

    def __init__(self, zone: str) -> None:
        self.validator = event_validator()
        self.fast = self.validator.fast_decoder()
        self._kind_names = pa.array([s.__struct_config__.tag for s in self.fast.structs])
        self.calendar = LocalCalendar(zone)
        self.is_bot = BotMatcher()
        self.agents = AgentIds()
        self.hosts = Memo(url_host, memory=200_000)

    def parse(self, batch: LineBatch) -> tuple[pa.Table, pa.Table]:
        """Split a batch into kept-row and rejected-row tables."""
        decode, errors = self.fast.decode, self.fast.errors
        events, indices, exact = [], [], []
        for index, line in enumerate(batch.lines):
            try:
                events.append(decode(line))
            except errors:
                exact.append(index)
            else:
                indices.append(index)
        kept = pa.table(
            self._columns(batch, events, np.fromiter(indices, np.uint64, len(indices))),
            schema=EVENT_COLUMNS,
        )
        breaks = self.fast.rule_breaks(events, kept)
        if breaks.any():
            exact += np.asarray(indices)[breaks].tolist()
            kept = kept.filter(pa.array(~breaks))
        exact_kept, rejected = self._parse_exact(batch, sorted(exact))
        return pa.concat_tables([kept, exact_kept]), rejected

    def _columns(self, batch: LineBatch, events: list, indices: np.ndarray) -> dict[str, Any]:
        """Decoded events → the columns of the compact kept-row table."""
        count = len(events)
        ts = np.fromiter([e.ts for e in events], np.int64, count)
        positions = indices + np.uint64(batch.first_position)
        kind = np.fromiter([e.kind_code for e in events], np.int32, count)
        value = [e.value_ms for e in events]
        agents = [e.ua for e in events]
        columns = {
            "site_id": [e.site_id for e in events],
            "day": self.calendar.days(ts),
            "device_id": [e.device_id for e in events],
            "ts": ts,
            "event_id": [e.event_id for e in events],
            "received_at": [e.received_at for e in events],
            "type": pa.DictionaryArray.from_arrays(kind, self._kind_names),
            "ua_ivt": self.is_bot.verdicts(agents),
            "ip_class": [e.ip_class for e in events],
            # Metrics cap values at 30 s / 60 s: clamping to the column's range loses nothing.
            "value_ms": _clamped(value),
            "action": [e.action or "" for e in events],  # UNSET is falsy
            "source_id": pa.DictionaryArray.from_arrays(
                np.zeros(count, dtype=np.int32), pa.array([batch.source_id])
            ),
            "position": positions,
            **{name: _dimension(events, name) for name in DIMENSION_FIELDS},
            "referrer_host": self._hosts(map(operator.attrgetter("referrer"), events)),
            "url_host": self._hosts(map(operator.attrgetter("url"), events)),
            "ua_id": self.agents.ids(agents),
            "read_order": positions + np.uint64(batch.source_index << 40),
        }
        return columns

    def _hosts(self, urls: Iterator) -> pa.DictionaryArray:
        """§8 hosts of a URL column ('' where the field is missing)."""
        texts = [url or "" for url in urls]
        return pc.dictionary_encode(pa.array(self.hosts(texts), pa.string()))

    def _parse_exact(self, batch: LineBatch, indices: list[int]) -> tuple[pa.Table, pa.Table]:
        """A plain JSON decode and the per-event validator, line by line."""
        validate, day_of, is_bot = self.validator.validate, self.calendar.day, self.is_bot
        host_of = self.hosts
        kept: dict[str, list] = {name: [] for name in EVENT_COLUMNS.names}
        rejected: dict[str, list] = {name: [] for name in REJECTED_COLUMNS.names}
        for index in indices:
            line = batch.lines[index]
            position = batch.first_position + index
            try:
                # The reader the ingest service uses too: an integer of any size stays one.
                event = read_json(line)
            except NotJson as exc:
                problem: Invalid | None = Invalid(RejectReason.NOT_JSON, f"not JSON: {exc}")
                event = None
            else:
                problem = validate(event)
            if problem is not None:
                site = event.get("site_id") if type(event) is dict else None
                rejected["source_id"].append(batch.source_id)
                rejected["position"].append(position)
                rejected["reason"].append(problem.reason.value)
                rejected["detail"].append(problem.detail)
                rejected["site_id"].append(site if type(site) is str else "")
                rejected["raw"].append(_raw_text(line))
                continue
            value_field = _VALUE_FIELD[event["type"]]
            row = {
                "site_id": event["site_id"],
                "day": day_of(event["ts"]),
                "device_id": event["device_id"],
                "ts": event["ts"],
                "event_id": event["event_id"],
                "received_at": event["received_at"],
                "type": event["type"],
                "ua_ivt": is_bot(event["ua"]),
                "ip_class": event["ip_class"],
                # Metrics cap values at 30 s / 60 s: clamping to the column's range loses nothing.
                "value_ms": min(event[value_field], VALUE_LIMIT) if value_field else 0,
                "action": event.get("action", ""),
                "source_id": batch.source_id,
                "position": position,
                **{name: dimension_value(event.get(name)) for name in DIMENSION_FIELDS},
                "referrer_host": host_of([event.get("referrer", "")])[0],
                "url_host": host_of([event.get("url", "")])[0],
                "ua_id": int(self.agents.ids([event["ua"]])[0]),
                "read_order": (batch.source_index << 40) + position,
            }
            for name, value in row.items():
                kept[name].append(value)
        return (
            pa.table(kept, schema=EVENT_COLUMNS),
            pa.table(rejected, schema=REJECTED_COLUMNS),
        )


class ParseEventsFn(beam.DoFn):
    """LineBatch → kept rows (main output), rejected rows (tagged `rejected`) and the
    user agents not seen before by this worker (tagged `agents`)."""

    def __init__(self, zone: str) -> None:
        self.zone = zone

    def setup(self) -> None:
        self._parser = EventParser(self.zone)

    def process(self, batch: LineBatch) -> Iterator[pa.Table | beam.pvalue.TaggedOutput]:
        kept, rejected = self._parser.parse(batch)
        if kept.num_rows:
            yield kept
        if rejected.num_rows:
            yield beam.pvalue.TaggedOutput(REJECTED, rejected)
        agents = self._parser.agents.take_new()
        if agents.num_rows:
            yield beam.pvalue.TaggedOutput(AGENTS, agents)


class ParseEvents(beam.PTransform):
    """Decode and validate: kept rows, rejected rows and new user agents."""

    def __init__(self, zone: str) -> None:
        super().__init__()
        self.zone = zone

    def expand(self, batches: beam.PCollection) -> beam.pvalue.DoOutputsTuple:
        outputs = batches | "DecodeAndValidate" >> beam.ParDo(
            ParseEventsFn(self.zone)
        ).with_output_types(pa.Table).with_outputs(REJECTED, AGENTS, main="kept")
        typed_outputs(outputs, **{REJECTED: pa.Table, AGENTS: pa.Table})
        return outputs
