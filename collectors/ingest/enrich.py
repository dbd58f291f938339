"""What ingest learns from the client address and user agent before forgetting
the address: `ip_class` (data-centre ranges shipped in `schemas/`), `province`
(an IP-range table), `device_type` (from the user agent) and, where the client
sent no `device_id`, a cookieless one.

The cookieless id is, as Plausible does it, a salted hash of (salt, site_id, IP,
UA): the salt changes every UTC day and is deleted the day after, so the id
cannot be linked back to an address once the salt is gone, nor across days.
Yesterday's salt is kept so that a visit crossing midnight keeps its device:
`SaltStore.device_id` uses yesterday's salt for an address+UA seen yesterday
in this process, today's otherwise.
"""

from __future__ import annotations

import bisect
import csv
import hashlib
import ipaddress
import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from pressmeter.errors import ConfigError

__all__ = [
    "IpClassifier",
    "ProvinceTable",
    "SaltStore",
    "device_type",
    "load_provinces",
]

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
DAY_S = 86_400
# At most this many address+UA markers a day are remembered for midnight stitching.
SEEN_LIMIT = 2_000_000


def parse_ip(text: str) -> IpAddress | None:
    """The address, an IPv4-mapped IPv6 one (::ffff:a.b.c.d, how a socket listening
    on "::" sees IPv4 clients) as the IPv4 address it is."""
    try:
        address = ipaddress.ip_address(text.strip().split("%", 1)[0])
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class _RangeTable:
    """Disjoint integer ranges → a value, per IP version, looked up with bisect."""

    def __init__(self, ranges: Iterable[tuple[IpAddress, IpAddress, str]]) -> None:
        rows: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for first, last, value in ranges:
            rows[first.version].append((int(first), int(last), value))
        self._starts: dict[int, list[int]] = {}
        self._rows: dict[int, list[tuple[int, int, str]]] = {}
        for version, items in rows.items():
            items.sort()
            self._rows[version] = items
            self._starts[version] = [start for start, _, _ in items]

    def find(self, address: IpAddress) -> str | None:
        value = int(address)
        starts = self._starts[address.version]
        index = bisect.bisect_right(starts, value) - 1
        if index < 0:
            return None
        _, last, found = self._rows[address.version][index]
        return found if value <= last else None

    def __len__(self) -> int:
        return sum(len(rows) for rows in self._rows.values())


class IpClassifier:
    """`datacenter` inside a listed range, `unknown` for private, loopback,
    reserved or unparsable addresses, `residential` otherwise."""

    def __init__(self, cidrs: Iterable[str]) -> None:
        networks = [ipaddress.ip_network(c, strict=False) for c in cidrs]
        # Overlapping blocks are merged so that the range table stays disjoint.
        merged = list(ipaddress.collapse_addresses(n for n in networks if n.version == 4))
        merged += list(ipaddress.collapse_addresses(n for n in networks if n.version == 6))
        self._table = _RangeTable((n[0], n[-1], "datacenter") for n in merged)

    @classmethod
    def from_file(cls, path: str = "") -> IpClassifier:
        """The CIDR list at `path`, or the one shipped in `schemas/`."""
        if path:
            text = Path(path).read_text("utf-8")
        else:
            text = (resources.files("pressmeter.schemas") / "datacenter_cidrs.txt").read_text()
        lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
        try:
            return cls(line for line in lines if line)
        except ValueError as exc:
            raise ConfigError(f"data-centre CIDR list {path or '(shipped)'}: {exc}") from exc

    def classify(self, address: IpAddress | None) -> str:
        if address is None:
            return "unknown"
        if self._table.find(address) is not None:
            return "datacenter"
        if not address.is_global:
            return "unknown"
        return "residential"


class ProvinceTable:
    """IP ranges → ISO 3166-2:VN code (`VN-HN`)."""

    def __init__(self, ranges: Iterable[tuple[IpAddress, IpAddress, str]]) -> None:
        self._table = _RangeTable(ranges)

    def province(self, address: IpAddress | None) -> str | None:
        return None if address is None else self._table.find(address)

    def __len__(self) -> int:
        return len(self._table)


_PROVINCE = re.compile(r"VN-[0-9A-Z]{2,3}")  # the event schema's pattern


def _province_code(country: str, subdivision: str) -> str | None:
    """`VN-HN` from `VN-HN` or (VN, `HN`); None for anything else (`-`, the unknown
    region of IP2Location-style files, or a name), which the validator would refuse."""
    country, subdivision = country.strip().upper(), subdivision.strip().upper()
    if not subdivision.startswith("VN-"):
        if country != "VN":
            return None
        subdivision = f"VN-{subdivision}"
    return subdivision if _PROVINCE.fullmatch(subdivision) else None


def _range_rows(rows: Iterator[list[str]]) -> Iterator[tuple[IpAddress, IpAddress, str]]:
    """`first,last,province` rows; addresses as text or as integers (IP2Location)."""
    for row in rows:
        if len(row) < 3 or not row[0].strip() or row[0].startswith("#"):
            continue
        first, last = (_address(cell) for cell in row[:2])
        code = _province_code("VN", row[2])
        if code:
            yield first, last, code


def _address(cell: str) -> IpAddress:
    cell = cell.strip()
    if cell.isdigit():
        number = int(cell)
        return ipaddress.IPv4Address(number) if number < 2**32 else ipaddress.IPv6Address(number)
    return ipaddress.ip_address(cell)


def _maxmind_rows(
    blocks: Iterator[dict[str, str]], locations_path: str
) -> Iterator[tuple[IpAddress, IpAddress, str]]:
    """GeoIP2/GeoLite2 City CSV: `network,geoname_id,...` blocks joined with the
    `geoname_id,...,country_iso_code,...,subdivision_1_iso_code` locations file."""
    with open(locations_path, newline="", encoding="utf-8") as handle:
        codes = {
            row["geoname_id"]: code
            for row in csv.DictReader(handle)
            if (code := _province_code(row["country_iso_code"], row["subdivision_1_iso_code"]))
        }
    for row in blocks:
        code = codes.get(row.get("geoname_id") or row.get("registered_country_geoname_id", ""))
        if code:
            network = ipaddress.ip_network(row["network"], strict=False)
            yield network[0], network[-1], code


def load_provinces(path: str, locations_path: str = "") -> ProvinceTable:
    """Read an IP → province table. Two formats are accepted (see the README):
    a range CSV `first_ip,last_ip,province` (header optional; addresses as text or
    integers, so IP2Location/DB-IP style range files fit), or a MaxMind GeoIP2 /
    GeoLite2 City blocks CSV (header `network,geoname_id,...`) with its locations
    CSV given as `locations_path`."""
    if not path:
        return ProvinceTable(())
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            first = handle.readline()
            handle.seek(0)
            if first.startswith("network,"):
                if not locations_path:
                    raise ConfigError(f"{path} is a GeoIP2 blocks file: set geoip_locations_csv")
                return ProvinceTable(list(_maxmind_rows(csv.DictReader(handle), locations_path)))
            rows = csv.reader(handle)
            cell = (next(csv.reader([first]), None) or [""])[0].strip()  # quotes removed
            if first and parse_ip(cell) is None and not cell.isdigit():
                next(rows)  # a header line
            return ProvinceTable(list(_range_rows(rows)))
    except OSError as exc:
        raise ConfigError(f"cannot read province table {path}: {exc.strerror}") from exc
    except (ValueError, KeyError) as exc:
        raise ConfigError(f"province table {path}: {exc}") from exc


_TV = (
    "smart-tv",
    "smarttv",
    "hbbtv",
    "appletv",
    "googletv",
    "android tv",
    "tizen",
    "webos",
    "roku",
    "crkey",
    "aftb",
    "aftt",
    "bravia",
    "netcast",
    "tv",
)
_TABLET = ("ipad", "tablet", "kindle", "silk/", "playbook")
_MOBILE = ("mobi", "iphone", "ipod", "android", "windows phone", "opera mini")
_DESKTOP = ("windows nt", "macintosh", "x11", "cros", "linux x86_64")


@lru_cache(maxsize=4096)
def device_type(ua: str) -> str:
    """desktop, mobile, tablet, tv or other, from plain substrings of the UA (an
    Android UA without "Mobile" is a tablet, as Google's guidance says)."""
    low = ua.lower()
    if any(p in low for p in _TV[:-1]) or " tv" in low or low.startswith("tv"):
        return "tv"
    if any(p in low for p in _TABLET) or ("android" in low and "mobile" not in low):
        return "tablet"
    if any(p in low for p in _MOBILE):
        return "mobile"
    if any(p in low for p in _DESKTOP):
        return "desktop"
    return "other"


@dataclass(frozen=True)
class _Salt:
    day: int
    value: bytes


class SaltStore:
    """Daily salts in a folder shared by the worker processes: `<day>.salt`, 32
    random bytes, created once (exclusive create, so every worker uses the same),
    today's and yesterday's kept, older ones deleted at rotation."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        self._salts: dict[int, bytes] = {}
        # Keyed hashes of the address+UA pairs seen per day, in memory only (a
        # worker process's own traffic): seen yesterday, a pair keeps yesterday's
        # id after midnight, until this process restarts or the day after.
        self._seen: dict[int, set[bytes]] = {}

    def _salt(self, day: int) -> bytes:
        if day not in self._salts:
            path = self.folder / f"{day}.salt"
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                value = b""
                for _ in range(50):  # another worker is writing it
                    value = path.read_bytes()
                    if len(value) == 32:
                        break
                    time.sleep(0.01)
            else:
                value = secrets.token_bytes(32)
                os.write(fd, value)
                os.fsync(fd)
                os.close(fd)
            self._salts[day] = value
            self._rotate(day)
        return self._salts[day]

    def _rotate(self, today: int) -> None:
        for day in [d for d in self._salts if d < today - 1]:
            del self._salts[day]
        for day in [d for d in self._seen if d < today - 1]:
            del self._seen[day]
        for entry in self.folder.glob("*.salt"):
            if entry.stem.isdigit() and int(entry.stem) < today - 1:
                entry.unlink(missing_ok=True)

    def device_id(self, site_id: str, ip: str, ua: str, now_s: float) -> str:
        """The cookieless id: "c-" + 32 hex digits of keyed BLAKE2b(site, IP, UA)."""
        today = int(now_s) // DAY_S
        material = f"{site_id}\x00{ip}\x00{ua}".encode()
        day = today
        if today - 1 in self._seen:
            past = hashlib.blake2b(material, digest_size=16, key=self._salt(today - 1)).digest()
            if past in self._seen[today - 1]:
                day = today - 1
        salt = self._salt(day)
        marker = hashlib.blake2b(material, digest_size=16, key=salt).digest()
        seen = self._seen.setdefault(day, set())
        if len(seen) < SEEN_LIMIT:
            seen.add(marker)
        return (
            "c-"
            + hashlib.blake2b(material, digest_size=16, key=salt, person=b"pm-device").hexdigest()
        )
