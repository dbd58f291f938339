"""The canonical event (docs/standard.md §1) as code: validate a decoded event against the
JSON Schema in `schemas/` and name, for every refused event, one reason from a
closed set and the field at fault.

The validator is compiled once from the schema file, so the schema stays the one
source of truth. It is written for the pipeline's hot path: a generic JSON Schema
library checks about 20,000 events/s, this several hundred thousand.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal, Union

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pressmeter import schemas

__all__ = ["EventValidator", "FastDecoder", "Invalid", "RejectReason", "event_validator"]


class RejectReason(StrEnum):
    """Why an event was refused. One closed set for every part that refuses events."""

    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    INVALID_VALUE = "invalid_value"
    PERSONAL_DATA = "personal_data"
    TS_OUT_OF_WINDOW = "ts_out_of_window"


@dataclass(frozen=True)
class Invalid:
    """A refusal: the reason and a one-line detail that names the field."""

    reason: RejectReason
    detail: str


_MISSING = object()
FieldCheck = Callable[[Any], "Invalid | None"]


def _anchored(pattern: str) -> re.Pattern[str]:
    """Compile a JSON Schema pattern so that `$` means end of text, as in ECMA-262
    (Python's `$` also matches before a final newline)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _field_check(name: str, spec: dict[str, Any]) -> FieldCheck:
    """Build the check of one property from its schema: type, then its rule."""
    kind = spec["type"]
    rules: list[tuple[Callable[[Any], bool], str]] = []
    if "pattern" in spec:
        search = _anchored(spec["pattern"]).search
        rules.append((lambda v, s=search: s(v) is not None, f"does not match {spec['pattern']}"))
    if "minLength" in spec or "maxLength" in spec:
        lo, hi = spec.get("minLength", 0), spec.get("maxLength", 1 << 62)
        rules.append((lambda v, lo=lo, hi=hi: lo <= len(v) <= hi, f"length not in {lo}..{hi}"))
    if "enum" in spec:
        allowed = frozenset(spec["enum"])
        rules.append((allowed.__contains__, "not one of " + "|".join(spec["enum"])))
    if "minimum" in spec:
        low = spec["minimum"]
        rules.append((lambda v, low=low: v >= low, f"below {low}"))
    if "maximum" in spec:
        high = spec["maximum"]
        rules.append((lambda v, high=high: v <= high, f"above {high}"))
    forbidden = [
        (_anchored(alt["pattern"]).search, alt["description"])
        for alt in spec.get("not", {}).get("anyOf", [])
    ]
    python_type = {"string": str, "integer": int}[kind]
    wrong_type = Invalid(RejectReason.WRONG_TYPE, f"{name} is not a JSON {kind}")

    def check(value: Any) -> Invalid | None:
        # `type(...) is` on purpose: a bool is not an integer, a float never is.
        if type(value) is not python_type:
            return wrong_type
        for ok, why in rules:
            if not ok(value):
                return Invalid(RejectReason.INVALID_VALUE, f"{name} {why}")
        for looks_like, what in forbidden:
            if looks_like(value):
                return Invalid(RejectReason.PERSONAL_DATA, f"{name} looks like {what}")
        return None

    return check


class EventValidator:
    """Validates decoded events against one version of the event schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        properties: dict[str, dict[str, Any]] = schema["properties"]
        self._checks = {name: _field_check(name, spec) for name, spec in properties.items()}
        base = tuple(schema["required"])
        self.types: tuple[str, ...] = tuple(properties["type"]["enum"])
        extra = {
            rule["if"]["properties"]["type"]["const"]: tuple(rule["then"]["required"])
            for rule in schema.get("allOf", [])
        }
        # Per type: the required fields in schema order, then the optional ones.
        self._plan: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}
        for event_type in self.types:
            required = base + extra.get(event_type, ())
            optional = tuple(name for name in properties if name not in required)
            self._plan[event_type] = (required, optional)
        window = schema["x-pressmeter-ts-window"]
        self._before_ms: int = window["before_ms"]
        self._after_ms: int = window["after_ms"]
        self._type_check = self._checks["type"]
        self._properties = properties

    def validate(self, event: Any) -> Invalid | None:
        """None when `event` is a valid canonical event, else why it is not."""
        if type(event) is not dict:
            return Invalid(RejectReason.NOT_OBJECT, f"a JSON {type(event).__name__}, not an object")
        event_type = event.get("type", _MISSING)
        if event_type is _MISSING:
            return Invalid(RejectReason.MISSING_FIELD, "type is missing")
        problem = self._type_check(event_type)
        if problem is not None:
            return problem
        required, optional = self._plan[event_type]
        checks = self._checks
        for name in required:
            value = event.get(name, _MISSING)
            if value is _MISSING:
                return Invalid(RejectReason.MISSING_FIELD, f"{name} is missing")
            problem = checks[name](value)
            if problem is not None:
                return problem
        for name in optional:
            value = event.get(name, _MISSING)
            if value is not _MISSING:
                problem = checks[name](value)
                if problem is not None:
                    return problem
        received_at = event["received_at"]
        if not received_at - self._before_ms <= event["ts"] <= received_at + self._after_ms:
            return Invalid(
                RejectReason.TS_OUT_OF_WINDOW,
                "ts is outside [received_at - 72 h, received_at + 5 min]",
            )
        return None

    def fast_decoder(self) -> FastDecoder:
        """The same rules as msgspec types, for the hot path (see `FastDecoder`)."""
        return FastDecoder(self)


class FastDecoder:
    """Decodes and validates a raw line in one step, with msgspec types compiled
    from the schema: a tagged union on `type`, one struct per event type holding
    its required and optional fields with their rules.

    It is several times faster than orjson followed by `EventValidator.validate`.
    The rules Python would check one value at a time with `re` (the patterns, the
    identifier patterns of device_id) and the ts window are left to `rule_breaks`,
    which checks them column-wise on a whole batch. Whatever either refuses,
    `EventValidator.validate` then names the reason. A line with a field the schema
    does not name is refused here too, so that it is read whole, as the ingest
    service reads it (`pressmeter.jsontext`), and judged there: kept or not, the
    same verdict, at the exact path's pace.
    """

    def __init__(self, validator: EventValidator) -> None:
        properties = validator._properties
        # One struct per event type, in the order of `validator.types`. Each
        # carries `kind_code` (that order) and `value_ms` (the type's required
        # *_ms field, renamed so one attribute serves all types; 0 if it has
        # none) for the columns a batch extracts.
        self.structs: list[type] = []
        for code, event_type in enumerate(validator.types):
            required, optional = validator._plan[event_type]
            value = [n for n in required if n.endswith("_ms")][:1]
            fields: list[tuple] = [
                (n, _msgspec_type(properties[n]))
                if n not in value
                else ("value_ms", _msgspec_type(properties[n]), msgspec.field(name=n))
                for n in required
                if n != "type"
            ]
            # An absent optional field reads None (a JSON null is refused by its type).
            fields += [(n, _msgspec_type(properties[n]), None) for n in optional]
            struct = msgspec.defstruct(
                "".join(part.title() for part in event_type.split("_")),
                fields,
                tag_field="type",
                tag=event_type,
                kw_only=True,
                # msgspec skips an unknown field's value unread (its UTF-8, depth and
                # integer size unchecked): such a line goes to the exact path instead.
                forbid_unknown_fields=True,
                gc=False,  # plain strings and ints: no cycles to collect
                namespace={"kind_code": code} | ({} if value else {"value_ms": 0}),
            )
            self.structs.append(struct)
        self.decode = msgspec.json.Decoder(Union[tuple(self.structs)]).decode  # noqa: UP007
        # Besides its own errors: a string that is not UTF-8, and deep nesting skipped
        # while looking for the `type` tag, raise Python's own.
        self.errors = (
            msgspec.DecodeError,
            msgspec.ValidationError,
            UnicodeDecodeError,
            RecursionError,
        )
        # (field, pattern, whether a match breaks the rule) for column-wise checks.
        # A field's forbidden patterns are joined into one, so its column is read once.
        self.column_rules = [
            (name, spec["pattern"], False) for name, spec in properties.items() if "pattern" in spec
        ] + [
            (name, "|".join(f"(?:{alt['pattern']})" for alt in spec["not"]["anyOf"]), True)
            for name, spec in properties.items()
            if "anyOf" in spec.get("not", {})
        ]
        self.before_ms, self.after_ms = validator._before_ms, validator._after_ms

    def rule_breaks(self, columns: dict[str, Any]) -> np.ndarray:
        """Rows that break a pattern or the ts window. `columns` holds the decoded
        events' `ts` and `received_at` (int64) and every field a pattern rules, as
        Arrow text (null where an optional field is absent, which passes)."""
        ts, received = columns["ts"], columns["received_at"]
        bad = (ts < received - self.before_ms) | (ts > received + self.after_ms)
        for name, pattern, match_breaks in self.column_rules:
            bad |= _pattern_breaks(columns[name], pattern, match_breaks)
        return bad


def _pattern_breaks(values: Any, pattern: str, match_breaks: bool) -> np.ndarray:
    """Where `values` (a string or dictionary column) break a pattern rule."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if pa.types.is_dictionary(values.type):
        per_value = _pattern_breaks(values.dictionary, pattern, match_breaks)
        return per_value[values.indices.to_numpy(zero_copy_only=False)]
    matches = pc.match_substring_regex(values, pattern)
    if not match_breaks:
        matches = pc.invert(matches)
    return np.asarray(pc.fill_null(matches, False).to_numpy(zero_copy_only=False), dtype=bool)


def _msgspec_type(spec: dict[str, Any]) -> Any:
    """A property's JSON Schema as a msgspec annotation with the same constraints,
    but for patterns, which `FastDecoder.rule_breaks` checks column-wise."""
    if "enum" in spec:
        return Literal[tuple(spec["enum"])]
    if spec["type"] == "integer":
        limits = {k: spec[j] for j, k in (("minimum", "ge"), ("maximum", "le")) if j in spec}
        return Annotated[int, msgspec.Meta(**limits)] if limits else int
    meta = {}
    if "minLength" in spec:
        meta["min_length"] = spec["minLength"]
    if "maxLength" in spec:
        meta["max_length"] = spec["maxLength"]
    return Annotated[str, msgspec.Meta(**meta)] if meta else str


def event_validator() -> EventValidator:
    """The validator of the current event schema version."""
    return EventValidator(schemas.load_schema(schemas.EVENT_SCHEMA))
