"""Forgetting the client's address: what ingest writes (Kafka keys and values,
the spool, logs) never holds an address a request came from or claimed.

A request's addresses are its TCP peer, every address in its X-Forwarded-For
header, and, for a signed request, each event's `ip`. `AddressScrub` replaces
each of them by `[ip]` in every spelling, in letter case, wherever it stands
in the event's strings, keys and numbers (even inside a longer token: a
wrongly forgotten digit costs less than a kept address):

- IPv4 `a.b.c.d` (so also inside `::ffff:a.b.c.d`, `box-a.b.c.d`, a URL), its
  integer (`1360487169`) and 8-digit hex (`51176301`, `0x51176301`) forms, and
  its IPv4-mapped IPv6 groups (`::ffff:5117:6301`);
- IPv6 compressed, exploded, with leading zeros dropped, its 32-digit hex and
  its integer forms; with or without a zone (`%eth0`); and any IPv6-shaped
  token that parses to it (a partly compressed spelling).

An address given with a leading space, a zone or as IPv4-mapped IPv6 is read as
the address it is, and all of the above is replaced. A refused event's text
also has anything shaped like an address replaced (`scrub_shapes`), whoever it
belongs to, and so do log records (`LogScrub`): aiohttp writes the peer on a 500
(`Error handling request from <peer>`).
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from typing import Any

from pressmeter.collectors.ingest.enrich import IpAddress, parse_ip

__all__ = ["AddressScrub", "LogScrub", "addresses_in", "connection_addresses", "scrub_shapes"]

REPLACEMENT = "[ip]"
# Candidates, parsed to tell. Possessive, and a run is tried only where it
# starts, so a long hostile string costs linear time.
_V4 = re.compile(r"(?<![0-9])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])")
_V6 = re.compile(r"(?<![0-9A-Fa-f:.])[0-9A-Fa-f.]*+:[0-9A-Fa-f.]*+:[0-9A-Fa-f:.]*+(?:%[\w.-]+)?")
_V6_HINT = re.compile(rb":[0-9A-Fa-f]{0,4}:")  # in every IPv6 spelling; rare in JSON


def _v6(match: re.Match[str]) -> IpAddress | None:
    return parse_ip(match[0])


def _v4(match: re.Match[str]) -> IpAddress | None:
    """A dotted quad, leading zeros allowed (`081.023.099.001`)."""
    numbers = [int(p) for p in match[0].split(".")]
    return ipaddress.IPv4Address(bytes(numbers)) if max(numbers) <= 255 else None


def addresses_in(text: str) -> Iterator[IpAddress]:
    """Every address written in `text` (a header such as X-Forwarded-For, which
    may add ports or brackets), IPv4-mapped ones as IPv4."""
    for pattern, parse in ((_V6, _v6), (_V4, _v4)):
        for match in pattern.finditer(text):
            address = parse(match)
            if address is not None:
                yield address


def connection_addresses(peer: str | None, forwarded: str | None) -> tuple[IpAddress, ...]:
    """The addresses a request came from: its TCP peer and every address of its
    X-Forwarded-For header, believed or not."""
    address = parse_ip(peer) if peer and not forwarded else None
    if address is not None:  # the common case, without a pattern
        return (address,)
    return tuple(dict.fromkeys(addresses_in(f"{peer or ''} {forwarded or ''}")))


def scrub_shapes(text: str) -> str:
    """`text` with anything shaped like an address as [ip]."""
    text = _V6.sub(lambda m: REPLACEMENT if _v6(m) else m[0], text)
    return _V4.sub(REPLACEMENT, text)


def _spellings(address: IpAddress) -> list[str]:
    """The texts that stand for `address` (lower case), longest first."""
    number = int(address)
    if address.version == 4:
        mapped = f"{number >> 16:04x}:{number & 0xFFFF:04x}"  # ::ffff:5117:6301
        return [str(address), mapped, str(number), f"{number:08x}"]
    groups = address.exploded.split(":")
    short = ":".join(g.lstrip("0") or "0" for g in groups)
    return [address.exploded, str(number), f"{number:032x}", short, str(address)]


@lru_cache(maxsize=4096)
def _pattern(addresses: frozenset[IpAddress]) -> re.Pattern[str]:
    """One case-insensitive pattern for every spelling, longest first (plain
    alternatives, which `re` searches fast)."""
    texts = sorted({t for a in addresses for t in _spellings(a)}, key=len, reverse=True)
    return re.compile("|".join(map(re.escape, texts)), re.IGNORECASE)


class AddressScrub:
    """Replaces a request's addresses in text and in decoded JSON values."""

    def __init__(self, addresses: Iterable[IpAddress]) -> None:
        self.addresses = frozenset(addresses)
        self._needles = tuple({t.encode() for a in self.addresses for t in _spellings(a)})

    def found(self, data: bytes) -> bool:
        """Whether `data` holds one of the addresses (a fast test: the hot path)."""
        if not self.addresses:
            return False
        low = data.lower()
        if any(needle in low for needle in self._needles):
            return True
        if _V6_HINT.search(data) is None:
            return False
        return any(_v6(m) in self.addresses for m in _V6.finditer(data.decode()))

    def text(self, text: str) -> str:
        """`text` with every spelling of the addresses as [ip]."""
        if not self.addresses:
            return text
        text = _pattern(self.addresses).sub(REPLACEMENT, text)
        return _V6.sub(lambda m: REPLACEMENT if _v6(m) in self.addresses else m[0], text)

    def value(self, value: Any) -> Any:
        """A decoded JSON value with the addresses replaced in every string, key
        and number (a number that holds one becomes the string with [ip])."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            text = repr(value)
            scrubbed = self.text(text)
            return value if scrubbed == text else scrubbed
        return value


class LogScrub(logging.Filter):
    """A handler filter: every record's text (message, arguments, traceback)
    with anything shaped like an address as [ip]. Records of `keep` loggers
    pass as they are (the Kafka producer's: they name brokers, never clients)."""

    def __init__(self, keep: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.keep = keep

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith(self.keep):
            return True
        record.msg = scrub_shapes(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = scrub_shapes(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if record.stack_info:
            record.stack_info = scrub_shapes(record.stack_info)
        return True
