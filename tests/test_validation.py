"""docs/standard.md §1 and §2 step 1: which lines are refused, with which reason, and what
is kept of them; the fast path (msgspec) and the exact path (orjson + EventValidator)
agree, and both agree with the JSON Schema file read by a generic validator, but
for the differences the Readings of docs/standard.md name (integral floats such as 1.0,
the ts window) and one of that validator's own (Python's `$` in patterns).

All but the last test are unit tests on `EventParser`; the last one runs a batch on
both stores and reads the dead-letter table back.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator
from support import ZONE, event, local_ms

from pressmeter.events import RejectReason, event_validator
from pressmeter.pipelines.parse import RAW_LIMIT, EventParser, LineBatch
from pressmeter.store import open_store

SCHEMA_FILE = (
    Path(__file__).resolve().parents[1] / "schemas/vn.pressmeter/event/jsonschema/1-0-0.json"
)
T = local_ms("2024-11-20 10:00")
R = T + 500  # received_at of the events built here
H72 = 72 * 3_600_000
MIN5 = 5 * 60_000
TS_MAX = 4_102_444_800_000
BASE_FIELDS = ("event_id", "type", "site_id", "device_id", "ts", "received_at", "ua", "ip_class")
INTEGER_FIELDS = ("ts", "received_at", "engaged_ms", "played_ms")
PATTERN_FIELDS = ("event_id", "site_id", "province")

NOT_JSON = RejectReason.NOT_JSON.value
NOT_OBJECT = RejectReason.NOT_OBJECT.value
MISSING = RejectReason.MISSING_FIELD.value
WRONG_TYPE = RejectReason.WRONG_TYPE.value
INVALID = RejectReason.INVALID_VALUE.value
PERSONAL = RejectReason.PERSONAL_DATA.value
WINDOW = RejectReason.TS_OUT_OF_WINDOW.value
KEPT = "kept"


def base(kind: str = "page_view", **fields: Any) -> dict[str, Any]:
    """A valid event of `kind` at T, received 500 ms later, with a fixed id."""
    return event(kind, at=T, event_id="e-1", **fields)


def without(item: dict[str, Any], name: str) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key != name}


def text(item: dict[str, Any] | str) -> str:
    return item if isinstance(item, str) else orjson.dumps(item).decode()


@pytest.fixture(scope="module")
def parser() -> EventParser:
    return EventParser(ZONE)


def parse(parser: EventParser, lines: list[str | bytes]) -> list[tuple[str, str]]:
    """(reason or "kept", detail) per line, in line order; each line is accounted for
    exactly once, kept or rejected."""
    raw = [line if isinstance(line, bytes) else line.encode() for line in lines]
    kept, rejected = parser.parse(LineBatch(0, "file:x", 1, [line + b"\n" for line in raw]))
    verdict: dict[int, tuple[str, str]] = {}
    for position in kept["position"].to_pylist():
        assert position not in verdict
        verdict[position] = (KEPT, "")
    for row in rejected.select(["position", "reason", "detail"]).to_pylist():
        assert row["position"] not in verdict
        verdict[row["position"]] = (row["reason"], row["detail"])
    assert sorted(verdict) == list(range(1, len(lines) + 1))
    return [verdict[position] for position in range(1, len(lines) + 1)]


# --------------------------------------------------------------- every reason


def _rejects() -> list[tuple[str, str, str, str]]:
    """(case, line, reason, what the detail must contain)."""
    pv, eng, media = base(), base("engagement"), base("media")
    pv_text = text(pv)
    cases = [
        ("empty line", "", NOT_JSON, "not JSON"),
        ("blank line", "   ", NOT_JSON, "not JSON"),
        ("two objects on one line", pv_text + pv_text, NOT_JSON, "not JSON"),
        ("two objects, a space between", pv_text + " " + pv_text, NOT_JSON, "not JSON"),
        ("cut short", pv_text[:-1], NOT_JSON, "not JSON"),
        ("single quotes", "{'event_id': 'e-1'}", NOT_JSON, "not JSON"),
        ("NaN", pv_text.replace(f'"ts":{T}', '"ts":NaN'), NOT_JSON, "not JSON"),
        ("an array", "[1, 2]", NOT_OBJECT, "not an object"),
        ("an event in an array", f"[{pv_text}]", NOT_OBJECT, "not an object"),
        ("a number", "42", NOT_OBJECT, "not an object"),
        ("a string", '"page_view"', NOT_OBJECT, "not an object"),
        ("null", "null", NOT_OBJECT, "not an object"),
    ]
    cases += [(f"page_view without {n}", text(without(pv, n)), MISSING, n) for n in BASE_FIELDS]
    cases += [
        ("page_view without url", text(without(pv, "url")), MISSING, "url"),
        ("engagement without url", text(without(eng, "url")), MISSING, "url"),
        ("engagement without engaged_ms", text(without(eng, "engaged_ms")), MISSING, "engaged_ms"),
    ]
    cases += [
        (f"media without {n}", text(without(media, n)), MISSING, n)
        for n in ("media_id", "action", "played_ms", "play_id")
    ]
    wrong = [
        ("ts", 1.0),
        ("ts", float(T)),
        ("ts", True),
        ("ts", str(T)),
        ("ts", None),
        ("received_at", False),
        ("event_id", 7),
        ("type", 1),
        ("site_id", ["news1.vn"]),
        ("device_id", {"id": "d"}),
        ("ua", None),
        ("ip_class", 1),
        ("url", None),
        ("province", None),
        ("title", 5),
        ("device_type", None),
    ]
    cases += [(f"{n} = {v!r}", text({**pv, n: v}), WRONG_TYPE, n) for n, v in wrong]
    cases += [
        ("ts written 1.7e12", pv_text.replace(f'"ts":{T}', '"ts":1.7e12'), WRONG_TYPE, "ts"),
        ("engaged_ms 5000.0", text({**eng, "engaged_ms": 5000.0}), WRONG_TYPE, "engaged_ms"),
        ("played_ms '100'", text({**media, "played_ms": "100"}), WRONG_TYPE, "played_ms"),
    ]
    invalid = [
        (pv, "event_id", "e 1!"),
        (pv, "event_id", "é"),
        (pv, "event_id", "e" * 65),
        (pv, "event_id", ""),
        (pv, "type", "click"),
        (pv, "type", "PAGE_VIEW"),
        (pv, "site_id", "News1.vn"),
        (pv, "site_id", ".news1.vn"),
        (pv, "site_id", "n" * 65),
        (pv, "site_id", "news1.vn/"),
        (pv, "ip_class", "other"),
        (pv, "device_id", ""),
        (pv, "device_id", "d" * 129),
        (pv, "device_type", "watch"),
        (pv, "province", "HN"),
        (eng, "engaged_ms", -1),
        (media, "played_ms", -1),
        (media, "action", "stop"),
        (media, "media_id", ""),
        (media, "play_id", "p" * 65),
        (media, "media_kind", "podcast"),
        (media, "stream", "replay"),
    ]
    cases += [
        (f"{item['type']} {n} = {v!r}", text({**item, n: v}), INVALID, n) for item, n, v in invalid
    ]
    cases += [
        ("ts above 2100", text({**pv, "ts": TS_MAX + 1, "received_at": TS_MAX}), INVALID, "ts"),
        ("received_at above 2100", text({**pv, "received_at": TS_MAX + 1}), INVALID, "received_at"),
        ("ts negative", text({**pv, "ts": -1}), INVALID, "ts"),
    ]
    personal = [
        "nguyen.van.a@gmail.com",
        "reader+1@báo.vn",
        "192.168.1.20",
        "8.8.8.8",
        "2001:db8::8a2e:370:7334",
        "::1",
        "fe80::1",
        "+84912345678",
        "84912345678",
        "0084912345678",
        "0912345678",
        "02838221234",
    ]
    cases += [
        (f"device_id {v}", text({**pv, "device_id": v}), PERSONAL, "device_id") for v in personal
    ]
    cases += [
        ("ts 72 h + 1 ms before", text({**pv, "ts": R - H72 - 1}), WINDOW, "ts"),
        ("ts 5 min + 1 ms after", text({**pv, "ts": R + MIN5 + 1}), WINDOW, "ts"),
        ("ts a year late", text({**pv, "received_at": R + 365 * 86_400_000}), WINDOW, "ts"),
    ]
    return cases


REJECTS = _rejects()


def test_every_reason_is_exercised() -> None:
    assert {reason for _, _, reason, _ in REJECTS} == {r.value for r in RejectReason}


@pytest.mark.parametrize(
    ("line", "reason", "named"),
    [case[1:] for case in REJECTS],
    ids=[case[0] for case in REJECTS],
)
def test_rejected_with_reason_and_field(parser: EventParser, line: str, reason: str, named: str):
    [(got, detail)] = parse(parser, [line])
    assert got == reason, detail
    if reason in (NOT_JSON, NOT_OBJECT):
        assert named in detail
    else:  # "<field> is missing", "<field> is not a JSON integer", "<field> above …"
        assert detail.startswith(f"{named} "), detail


def test_missing_detail_names_exactly_the_field(parser: EventParser) -> None:
    media = base("media")
    lines = [text(without(media, n)) for n in (*BASE_FIELDS, "media_id", "action")]
    assert [detail for _, detail in parse(parser, lines)] == [
        f"{n} is missing" for n in (*BASE_FIELDS, "media_id", "action")
    ]


def test_accepted_at_the_limits(parser: EventParser) -> None:
    pv = base()
    accepted = [
        {**pv, "ts": R - H72},  # exactly 72 h before received_at
        {**pv, "ts": R + MIN5},  # exactly 5 min after
        {**pv, "ts": TS_MAX, "received_at": TS_MAX},
        {**pv, "ts": 0, "received_at": 0},
        {**pv, "event_id": "E_" + "x" * 61 + "-"},  # 64 characters
        {**pv, "site_id": "9" + "a.-" * 21},  # 64 characters, starting with a digit
        {**pv, "device_id": "é" * 128},  # 128 characters (256 bytes)
        {**pv, "device_id": "user@localhost"},  # no dot after the @: not an e-mail
        {**pv, "device_id": "1.2.3"},
        {**pv, "device_id": "091234567"},  # 8 digits after the 0: not a phone
        {**pv, "device_id": "6f1c2a90-3b7e-4c55-9d0e-2f8b7a61c3d4"},
        {**pv, "ua": "", "ip_class": "datacenter"},  # invalid traffic, not an invalid event
        {**pv, "province": "VN-HN", "device_type": "tv", "title": "", "extra": [1, {"x": None}]},
        base("engagement", engaged_ms=0),
        base("media", played_ms=0, action="end", media_kind="audio", stream="vod"),
    ]
    assert parse(parser, [text(item) for item in accepted]) == [(KEPT, "")] * len(accepted)


def test_kept_row_holds_the_event(parser: EventParser) -> None:
    media = base("media", played_ms=90_000, action="end", device="box-1")
    kept, rejected = parser.parse(LineBatch(2, "file:x", 7, [text(media).encode() + b"\n"]))
    assert rejected.num_rows == 0
    row = kept.to_pylist()[0]
    assert {k: row[k] for k in ("site_id", "device_id", "ts", "event_id", "received_at")} == {
        "site_id": "news1.vn",
        "device_id": "box-1",
        "ts": T,
        "event_id": "e-1",
        "received_at": R,
    }
    assert (row["type"], row["action"], row["value_ms"], row["ua_ivt"]) == (
        "media",
        "end",
        90_000,
        0,
    )
    assert (row["position"], row["read_order"]) == (7, (2 << 40) + 7)


def test_integers_of_any_size_are_integers(parser: EventParser) -> None:
    """§1: an integer is a JSON number without fraction or exponent, whatever its
    size (readings: `1.0` and `1e3` are refused, digits alone are integers). So a
    huge engaged_ms is valid (capped later), and a huge ts is out of range, not of
    the wrong type. (orjson, on the exact path, reads digits beyond 64 bits as a
    float, which the validator then calls wrong_type.)"""
    big = str(10**23)
    pv, eng = text(base()), text(base("engagement"))
    lines = [
        eng.replace('"engaged_ms":5000', f'"engaged_ms":{big}'),
        pv.replace(f'"ts":{T}', f'"ts":{big}'),
        pv.replace(f'"received_at":{R}', f'"received_at":-{big}'),
        pv.replace(f'"received_at":{R}', f'"received_at":{2**64}'),
        # A huge but valid engaged_ms must not hide the event's real fault.
        eng.replace('"engaged_ms":5000', f'"engaged_ms":{big}').replace(
            f'"ts":{T}', f'"ts":{R + MIN5 + 1}'
        ),
    ]
    assert [reason for reason, _ in parse(parser, lines)] == [
        KEPT,
        INVALID,
        INVALID,
        INVALID,
        WINDOW,
    ]


# ------------------------------------------------------------ raw text and position


def test_rejected_rows_keep_raw_text_and_position(parser: EventParser) -> None:
    # '{"x":"' + k times 'a' + '"}' is an object without a type: 8 + k characters.
    at_limit = '{"x":"' + "a" * (RAW_LIMIT - 8) + '"}'
    over_limit = '{"x":"' + "a" * (RAW_LIMIT - 7) + '"}'
    lines = [text(base()), "", "[1]", at_limit, over_limit, "not json\r"]
    kept, rejected = parser.parse(
        LineBatch(0, "file:x", 41, [line.encode() + b"\n" for line in lines])
    )
    assert kept["position"].to_pylist() == [41]
    rows = sorted(rejected.to_pylist(), key=lambda r: r["position"])
    assert [(r["position"], r["reason"]) for r in rows] == [
        (42, NOT_JSON),
        (43, NOT_OBJECT),
        (44, MISSING),
        (45, MISSING),
        (46, NOT_JSON),
    ]
    assert [r["raw"] for r in rows[:3]] == ["", "[1]", at_limit]
    assert len(at_limit) == RAW_LIMIT == 65_536
    assert rows[3]["raw"] == over_limit[:RAW_LIMIT] + "…[truncated]"
    assert rows[4]["raw"] == "not json"  # the line ending (\r\n) is not part of the text
    assert {r["source_id"] for r in rows} == {"file:x"}


# --------------------------------------------------------------- the two paths


def _corpus() -> list[tuple[str, Any, bytes]]:
    """(mutated field, its new value, line): valid events of each type with one field
    dropped or set to a wrong type, a boundary value or another field's value; the
    ts window around its edges; and malformed lines."""
    full = {
        "province": "VN-HN",
        "device_type": "mobile",
        "channel_id": "c1",
        "content_id": "a1",
        "section": "news",
        "referrer": "https://google.com/",
        "title": "Tin",
    }
    bases = [
        base(**full),
        base("engagement", **full),
        base("media", media_kind="video", stream="live", **full),
    ]
    values: list[Any] = [
        None,
        True,
        False,
        0,
        -1,
        1,
        1.0,
        1.5,
        1000.0,
        float(T),
        T,
        R,
        2**31,
        2**63 - 1,
        -(2**63),
        TS_MAX,
        TS_MAX + 1,
        "",
        "x",
        "1",
        str(T),
        [],
        {},
        ["x"],
        "a" * 64,
        "a" * 65,
        "a" * 128,
        "a" * 129,
        "é" * 64,
        "A",
        "VN-HN",
        "VN-HN\n",
        "e-1\n",
        "news1.vn\n",
        "video",
        "live",
        "start",
        "end",
        "tv",
        "residential",
        "datacenter",
        "page_view",
        "engagement",
        "media",
        "nguyen@gmail.com",
        "10.0.0.1",
        "10.0.0.1\n",
        "::1",
        "+84912345678",
        "0912345678",
        " 0912345678",
    ]
    schema = json.loads(SCHEMA_FILE.read_text("utf-8"))
    names = [*schema["properties"], "extra"]
    corpus: list[tuple[str, Any, bytes]] = []
    for item in bases:
        for name in names:
            corpus.append((name, "<dropped>", orjson.dumps(without(item, name))))
            for value in values:
                corpus.append((name, value, orjson.dumps({**item, name: value})))
        for delta in (-H72 - 1, -H72, -H72 + 1, 0, MIN5 - 1, MIN5, MIN5 + 1):
            corpus.append(("ts", R + delta, orjson.dumps({**item, "ts": R + delta})))
    pv = orjson.dumps(bases[0])
    for line in (b"", b" ", b"{}", b"[]", b"null", b"1", b'"x"', pv + pv, pv[:-1], pv + b","):
        corpus.append(("<line>", line, line))
    # Duplicate keys: JSON parsers keep the last one; both paths must agree.
    corpus.append(("ts", "<twice>", pv[:-1] + b',"ts":"late"}'))
    corpus.append(("ts", "<twice>", b'{"ts":"early",' + pv[1:]))
    corpus.append(("type", "<twice>", pv[:-1] + b',"type":"media"}'))
    return corpus


CORPUS = _corpus()


def _exact(line: bytes) -> str:
    """The exact path's verdict: orjson, then EventValidator.validate."""
    try:
        decoded = orjson.loads(line)
    except orjson.JSONDecodeError:
        return NOT_JSON
    problem = event_validator().validate(decoded)
    return KEPT if problem is None else problem.reason.value


def test_fast_and_exact_paths_agree(parser: EventParser) -> None:
    assert len(CORPUS) > 2000
    got = parse(parser, [line for _, _, line in CORPUS])
    disagree = [
        (name, value, reason, _exact(line))
        for (name, value, line), (reason, _) in zip(CORPUS, got)
        if reason != _exact(line)
    ]
    assert disagree == []
    # The corpus reaches every verdict.
    assert {reason for reason, _ in got} == {KEPT, *(r.value for r in RejectReason)}


def test_fast_path_keeps_the_same_rows_as_the_exact_path(parser: EventParser) -> None:
    """The valid lines of the corpus, through the fast path, give the rows the exact
    path (orjson + validator, `_parse_exact`) gives, and the fields of the event."""
    lines = [line for _, _, line in CORPUS if _exact(line) == KEPT]
    batch = LineBatch(1, "file:x", 1, lines)
    fast, rejected = parser.parse(batch)
    exact, exact_rejected = parser._parse_exact(batch, list(range(len(lines))))
    assert rejected.num_rows == exact_rejected.num_rows == 0
    assert fast.num_rows == exact.num_rows == len(lines)

    def rows(table: Any) -> list[dict[str, Any]]:
        decoded = {name: table[name].to_pylist() for name in table.column_names}
        return sorted(
            (dict(zip(decoded, values)) for values in zip(*decoded.values())),
            key=lambda row: row["position"],
        )

    assert rows(fast) == rows(exact)
    for row, line in zip(rows(fast), lines):
        item = orjson.loads(line)
        value = item.get(
            {"engagement": "engaged_ms", "media": "played_ms"}.get(item["type"], ""), 0
        )
        assert row == {
            **row,
            "site_id": item["site_id"],
            "device_id": item["device_id"],
            "ts": item["ts"],
            "event_id": item["event_id"],
            "received_at": item["received_at"],
            "type": item["type"],
            "value_ms": min(value, 2**32 - 1),
            "action": item.get("action", ""),
        }


# ------------------------------------------------------------------- JSON Schema


def _differs_as_documented(name: str, value: Any, ours: str, schema_ok: bool) -> str | None:
    """Which known difference explains JSON Schema and us disagreeing on an event."""
    if schema_ok and ours == WRONG_TYPE and name in INTEGER_FIELDS and isinstance(value, float):
        return "integral float"  # JSON Schema's integer includes 1.0; §1's does not
    if schema_ok and ours == WINDOW:
        return "ts window"  # JSON Schema cannot compare two fields
    if name in (*PATTERN_FIELDS, "device_id") and str(value).endswith("\n"):
        # The jsonschema library matches `pattern` with Python's `re`, whose `$` also
        # matches before a final newline; ECMA-262, the dialect JSON Schema specifies
        # (and events.py follows), does not. So "e-1\n" passes its event_id pattern
        # and "10.0.0.1\n" its IPv4 pattern (the library then refuses it as an IP).
        return "python $"
    return None


def test_json_schema_file_agrees_but_for_documented_differences() -> None:
    schema = json.loads(SCHEMA_FILE.read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    generic = Draft202012Validator(schema)
    ours = event_validator()
    explained: dict[str, int] = {}
    unexplained = []
    for name, value, line in CORPUS:
        try:
            decoded = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # not JSON: nothing for a schema to judge
        problem = ours.validate(decoded)
        verdict = KEPT if problem is None else problem.reason.value
        schema_ok = generic.is_valid(decoded)
        if schema_ok == (problem is None):
            continue
        why = _differs_as_documented(name, value, verdict, schema_ok)
        if why is None:
            unexplained.append((name, value, verdict, schema_ok))
        else:
            explained[why] = explained.get(why, 0) + 1
    assert unexplained == []
    assert set(explained) == {"integral float", "ts window", "python $"}

    # The documented differences, one by one.
    pv = base()
    for item, reason in [
        ({**pv, "ts": 1.0}, WRONG_TYPE),
        ({**pv, "ts": float(T)}, WRONG_TYPE),
        ({**base("engagement"), "engaged_ms": 1000.0}, WRONG_TYPE),
        ({**pv, "ts": R - H72 - 1}, WINDOW),
        ({**pv, "ts": R + MIN5 + 1}, WINDOW),
    ]:
        assert generic.is_valid(item)
        problem = ours.validate(item)
        assert problem is not None and problem.reason.value == reason, item
    for item in ({**pv, "ts": R - H72}, {**pv, "ts": R + MIN5}):
        assert generic.is_valid(item) and ours.validate(item) is None
    # And the library's `$`, both ways (not a difference of the schema file).
    problem = ours.validate({**pv, "event_id": "e-1\n"})
    assert generic.is_valid({**pv, "event_id": "e-1\n"})
    assert problem is not None and problem.reason.value == INVALID
    assert not generic.is_valid({**pv, "device_id": "10.0.0.1\n"})
    assert ours.validate({**pv, "device_id": "10.0.0.1\n"}) is None


# --------------------------------------------------------------------- end to end


def test_rejected_lines_reach_the_dead_letter_table(runner) -> None:
    pv = event(at=T, device="d-ok")
    long_line = text({**without(event(at=T), "url"), "title": "t" * 70_000})
    lines: list[dict[str, Any] | str] = [
        pv,
        "",
        "[1, 2]",
        text(without(event(at=T), "url")),
        text({**event(at=T), "ts": float(T)}),
        text({**event(at=T), "site_id": "News1.vn"}),
        text({**event(at=T), "device_id": "nguyen.van.a@gmail.com"}),
        text({**event(at=T), "ts": R - H72 - 1, "received_at": R}),
        long_line,
        pv,  # a second copy of line 1: a duplicate
        event(at=T + 1, device="d-other"),
    ]
    summary = runner.batch(lines)
    assert summary.read == 11
    assert summary.rejected == {
        NOT_JSON: 1,
        NOT_OBJECT: 1,
        MISSING: 2,
        WRONG_TYPE: 1,
        INVALID: 1,
        PERSONAL: 1,
        WINDOW: 1,
    }
    assert (summary.duplicates, summary.kept) == (1, 2)
    assert summary.read == sum(summary.rejected.values()) + summary.duplicates + summary.kept

    rows = open_store(runner.store_url).rows(
        "SELECT position, toString(reason), detail, raw, source_id FROM rejected_events "
        "ORDER BY position"
    )
    assert [(int(p), reason) for p, reason, *_ in rows] == [
        (2, NOT_JSON),
        (3, NOT_OBJECT),
        (4, MISSING),
        (5, WRONG_TYPE),
        (6, INVALID),
        (7, PERSONAL),
        (8, WINDOW),
        (9, MISSING),
    ]
    raw = {int(p): r for p, _, _, r, _ in rows}
    for position in range(2, 9):
        assert raw[position] == text(lines[position - 1])
    assert raw[9] == long_line[:RAW_LIMIT] + "…[truncated]"
    details = {int(p): d for p, _, d, _, _ in rows}
    assert details[4] == details[9] == "url is missing"
    assert "site_id" in details[6] and "device_id" in details[7] and "ts" in details[5]
    assert all(source.startswith("file:sha256:") for *_, source in rows)

    day = runner.export("day")[("2024-11-20", "news1.vn")]
    assert (day["pageviews"], day["visitors"], day["duplicate_events"]) == (2, 2, 1)


# ------------------------------------------------------------------ poison lines


def _poison_lines() -> list[tuple[bytes, str, str]]:
    """(line, reason, what the detail names): lines a JSON decoder can crash on."""
    pv = orjson.dumps(base())
    with_extra = pv[:-1] + b',"extra":'
    return [
        (pv.replace(b'"https://news1.vn/a"', b'"caf\xe9"'), NOT_JSON, "not valid UTF-8"),
        (with_extra + b'"caf\xe9"}', NOT_JSON, "not valid UTF-8"),  # an unknown field too
        (b"[" * 1000 + b"]" * 1000, NOT_JSON, "nested deeper than 64 levels"),
        (b'{"a":' * 1000 + b"1" + b"}" * 1000, NOT_JSON, "nested deeper than 64 levels"),
        (with_extra + b"[" * 65 + b"]" * 65 + b"}", NOT_JSON, "nested deeper than 64 levels"),
        (with_extra + b"1" * 4301 + b"}", NOT_JSON, "an integer has more than 4300 digits"),
    ]


def test_poison_lines_are_rejected_with_their_bytes_escaped(parser: EventParser) -> None:
    """Issue 8, defect 1: invalid UTF-8 inside a string and deep nesting are
    `not_json` (not a crash), and `raw` shows the bad bytes as `\\xNN`."""
    cases = _poison_lines()
    pv = orjson.dumps(base())
    lines = [pv, *(line for line, _, _ in cases), pv.replace(b"e-1", b"e-2")]
    kept, rejected = parser.parse(LineBatch(0, "file:x", 1, [line + b"\n" for line in lines]))
    assert kept["position"].to_pylist() == [1, len(lines)]
    rows = sorted(rejected.to_pylist(), key=lambda r: r["position"])
    assert [r["position"] for r in rows] == list(range(2, len(lines)))
    for row, (line, reason, named) in zip(rows, cases):
        assert (row["reason"], named in row["detail"]) == (reason, True), row["detail"]
        assert row["raw"] == line.decode("utf-8", "backslashreplace")[:RAW_LIMIT]
    assert rows[0]["raw"].endswith('"url":"caf\\xe9"}')


def test_nesting_at_the_limit_and_big_numbers_are_read(parser: EventParser) -> None:
    """64 levels are JSON; so are 4,300-digit integers and 1e400 in an extra field."""
    pv = orjson.dumps(base())
    with_extra = pv[:-1] + b',"extra":'
    lines = [
        with_extra + b"[" * 63 + b"]" * 63 + b"}",  # the event is level 1
        with_extra + b"1" * 4300 + b"}",
        with_extra + b"1e400}",
        orjson.dumps({**base("engagement"), "engaged_ms": 1.5}),
    ]
    assert [reason for reason, _ in parse(parser, lines)] == [KEPT, KEPT, KEPT, WRONG_TYPE]


def test_poison_lines_do_not_stop_the_batch(runner) -> None:
    """End to end on both stores: the rest of the batch is counted and kept."""
    cases = _poison_lines()
    path = runner.folder / "poison.jsonl"
    path.write_bytes(
        orjson.dumps(event(at=T, device="d-1"))
        + b"\n"
        + b"".join(line + b"\n" for line, _, _ in cases)
        + orjson.dumps(event(at=T + 1, device="d-2"))
        + b"\n"
    )
    summary = runner.files([path])
    assert (summary.read, summary.rejected, summary.kept) == (8, {NOT_JSON: 6}, 2)
    rows = open_store(runner.store_url).rows(
        "SELECT position, raw FROM rejected_events ORDER BY position"
    )
    assert [int(p) for p, _ in rows] == list(range(2, 8))
    assert rows[0][1] == cases[0][0].decode("utf-8", "backslashreplace")
    assert "\\xe9" in rows[0][1] and "\ufffd" not in rows[0][1]
    day = runner.export("day")[("2024-11-20", "news1.vn")]
    assert (day["pageviews"], day["visitors"]) == (2, 2)
