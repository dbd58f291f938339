"""The `source` dimension of the standard's §8: where a visit came from, read
from the referrer of its first event.

Hosts are read once per distinct URL (URLs repeat a great deal) when events are
parsed and stored with the event, so the class is decided at facts time under
the lists current then (`schemas/search.txt`, `schemas/social.txt`).
"""

from __future__ import annotations

from functools import cache
from urllib.parse import urlsplit

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pressmeter import schemas

__all__ = [
    "NO_HOST",
    "SOURCE_CLASSES",
    "source_class",
    "source_classes",
    "url_host",
    "url_hosts",
]

# The stored host of a non-empty referrer that has none: a URL parser never
# reads a host with a `?` in it (the query starts there), so it equals no host.
NO_HOST = "?"
SOURCE_CLASSES = ("direct", "internal", "search", "social", "other")


def url_host(url: str) -> str:
    """§8: the host of `url` as a URL parser reads it (no scheme, port or user
    info), lower case, without a leading `www.`; "" for no URL, NO_HOST for a
    URL without a host."""
    if not url:
        return ""
    try:
        host = urlsplit(url.strip()).hostname
    except ValueError:  # an unbalanced [ in the netloc, say
        host = None
    if not host:
        return NO_HOST
    return host.removeprefix("www.")


# The shape of nearly every URL: a scheme, `//`, a host in lower case of letters,
# digits, dots and dashes, then the path, query or fragment (or nothing). For it
# `url_host` reads exactly the text between `//` and the next `/`, `?` or `#`:
# no user info, port, brackets, capitals, spaces or other characters to weigh.
_PLAIN_URL = r"^[A-Za-z][A-Za-z0-9+.-]*://(?P<host>[a-z0-9.-]+)(?:[/?#]|$)"


def url_hosts(urls: pa.Array) -> pa.Array:
    """`url_host` of each of `urls` (null stays null): plain URLs read column-wise,
    the others one by one (24,000 distinct URLs in 300,000 simulated events took
    0.25 s through urlsplit)."""
    plain = pc.struct_field(pc.extract_regex(urls, _PLAIN_URL), "host")  # null: not plain
    hosts = pc.replace_substring_regex(plain, r"^www\.", "")
    odd = np.flatnonzero(pc.and_(pc.is_valid(urls), pc.is_null(plain)).to_numpy(False))
    if not len(odd):
        return hosts
    texts = hosts.to_pylist()
    for row, url in zip(odd.tolist(), urls.take(pa.array(odd)).to_pylist()):
        texts[row] = url_host(url)
    return pa.array(texts, pa.string())


def _listed(host: str, entries: tuple[str, ...]) -> bool:
    return any(host == entry or host.endswith("." + entry) for entry in entries)


@cache
def _lists() -> tuple[tuple[str, ...], tuple[str, ...]]:
    return schemas.list_entries("search"), schemas.list_entries("social")


def source_class(referrer_host: str, own_host: str) -> str:
    """§8 source class of a visit whose first event has these stored hosts, in the
    standard's order: direct, internal, search, social, other."""
    search, social = _lists()
    if not referrer_host:
        return "direct"
    if referrer_host == own_host and own_host not in ("", NO_HOST):
        return "internal"
    if _listed(referrer_host, search):
        return "search"
    if _listed(referrer_host, social):
        return "social"
    return "other"


def source_classes(referrer_hosts: np.ndarray, own_hosts: np.ndarray) -> np.ndarray:
    """source_class of each pair, each distinct pair judged once."""
    if not len(referrer_hosts):
        return np.array([], dtype=object)
    pairs = np.char.add(np.char.add(referrer_hosts.astype(str), "\n"), own_hosts.astype(str))
    distinct, inverse = np.unique(pairs, return_inverse=True)
    classes = np.array(
        [source_class(*pair.split("\n", 1)) for pair in distinct.tolist()], dtype=object
    )
    return classes[inverse]
