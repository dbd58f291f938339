"""How a JSON text is read, the one way the ingest service and the batch pipeline
both read it, so that the same event gets the same verdict on either path.

The readings (docs/standard.md#r-json-text): a text is JSON when it is valid UTF-8
throughout (inside strings too), parses as one JSON value, nests at most
`MAX_DEPTH` levels, and writes no integer with more than `MAX_INT_DIGITS` digits.
Any other integer is an integer, whatever its size (10**23 stays exact); a number
with a fraction or an exponent is a number but never an integer, whatever its
magnitude (1e400 is read, as a decimal, not refused). Everything else is refused
with `NotJson`, whose message names what is wrong.
"""

from __future__ import annotations

import decimal
from typing import Any

import msgspec

__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "NotJson", "encode", "read_json"]

# Events are flat objects; 64 levels leave room for any extra field a collector adds
# while staying far below what the decoders' C stacks allow (about 1,000 levels,
# less the caller's own depth: not a fixed number, so not a rule).
MAX_DEPTH = 64
# Python's own bound on integer text (sys.get_int_max_str_digits), which msgspec keeps.
MAX_INT_DIGITS = 4300

_decode = msgspec.json.Decoder(float_hook=decimal.Decimal).decode
# The encoder of what was read: integers of any size, decimals as the numbers they were.
encode = msgspec.json.Encoder(decimal_format="number").encode
_CONTAINERS = (dict, list)


class NotJson(ValueError):
    """The text is not JSON as read here; the message says why."""


def read_json(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The value `data` holds, or `NotJson`."""
    try:
        value = _decode(data)
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.end]
        raise NotJson(f"a string is not valid UTF-8 (bytes {bad!r})") from None
    except RecursionError:
        raise NotJson(f"nested deeper than {max_depth} levels") from None
    except msgspec.ValidationError:  # decoding to Any: only an integer beyond the bound
        raise NotJson(f"an integer has more than {MAX_INT_DIGITS} digits") from None
    except msgspec.DecodeError as exc:
        raise NotJson(str(exc)) from None
    # Fewer openers than levels allowed cannot nest deeper (most bodies and lines).
    openers = data.count(b"{") + data.count(b"[")
    if openers > max_depth and _deeper_than(value, max_depth):
        raise NotJson(f"nested deeper than {max_depth} levels")
    return value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (`[]` is one),
    level by level rather than by recursion, which is what fails on deep input."""
    level = [value] if type(value) in _CONTAINERS else []
    for _ in range(limit):
        level = [
            child
            for item in level
            for child in (item.values() if type(item) is dict else item)
            if type(child) in _CONTAINERS
        ]
        if not level:
            return False
    return bool(level)
