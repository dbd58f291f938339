"""CDN/HLS access logs of live TV and radio streams → canonical media events.

A log line is one request. Segment requests (not playlists) with a success
status are kept; everything else is skipped (counted), and a line that cannot
be read is counted as malformed with its reason, never an error.

    client   = (client address, user agent) → device_id = "h-" + keyed BLAKE2b
               with the operator's salt; the address is forgotten after that
               (and after ip_class is read from it): it is never written
    play     = one client on one stream; a new play starts after more than
               `gap_s` seconds without a segment request
    played   = Σ durations of the distinct segments the play fetched
               (`segment_s`, or the segment name's duration when the segment
               pattern captures one)
    events   = start (played_ms 0), heartbeats, end; every event carries the
               play time since the previous one, at most `heartbeat_s` (≤ 60 s,
               the metric's cap), so their played_ms sum to the play's total
    ts       = the log time of the last segment the event covers;
               received_at = the same log time
    ids      = play_id and event_id are hashes of (site, client, stream, first
               segment time[, sequence]): importing the same logs again gives the
               same events, which the pipeline counts once (docs/standard.md §2).

Every play is built from all the lines given in one run: give together the
files a play may span (e.g. a day's rotated logs), or it is cut at the file edge.
"""

from __future__ import annotations

import datetime as dt
import enum
import gzip
import hashlib
import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from pressmeter.collectors.ingest.enrich import IpClassifier, device_type, parse_ip
from pressmeter.collectors.logs.formats import DEFAULT_SEGMENT_PATTERN, NGINX_COMBINED, NGINX_TIME
from pressmeter.errors import ConfigError

__all__ = [
    "DEFAULT_SEGMENT_PATTERN",
    "NGINX_COMBINED",
    "HlsImport",
    "ImportReport",
    "LineProblem",
    "import_logs",
]

MAX_CAPPED_MS = 60_000  # docs/standard.md §3: played_ms is capped at 60000 per event
_LINE_GROUPS = ("ip", "time", "path", "ua")


class LineProblem(enum.Enum):
    """Why a line was not read (malformed) — a closed set, each counted."""

    UNPARSABLE = "unparsable"  # the line pattern does not match
    BAD_TIME = "bad_time"  # the time cannot be read
    BAD_ADDRESS = "bad_address"  # the client address is not an IP address
    BAD_DURATION = "bad_duration"  # the segment name's duration is not a positive number


class Skip(enum.Enum):
    """Why a well-formed line is not a segment fetch (not an error)."""

    NOT_SEGMENT = "not_segment"  # a playlist, a key, any other file
    STATUS = "status"  # not a success (200/206)
    METHOD = "method"  # not GET


@dataclass(frozen=True)
class HlsImport:
    """How to read the logs and cut plays. `salt`: the operator's secret; keep it
    (the same salt gives the same device ids and event ids on a re-import)."""

    site_id: str
    salt: bytes
    gap_s: float = 60.0
    segment_s: float = 6.0
    heartbeat_s: float = 60.0
    line_pattern: str = NGINX_COMBINED
    time_format: str = NGINX_TIME
    segment_pattern: str = DEFAULT_SEGMENT_PATTERN
    media_kind: str | None = None  # video or audio, when every stream is one kind
    ok_statuses: frozenset[int] = frozenset({200, 206})
    datacenter_cidrs: str = ""  # default: schemas/datacenter_cidrs.txt

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,63}", self.site_id):
            raise ConfigError(f"not a site_id: {self.site_id!r}")
        if len(self.salt) < 16:
            raise ConfigError("the salt must be at least 16 bytes (e.g. head -c 32 /dev/urandom)")
        if self.gap_s <= 0 or self.segment_s <= 0:
            raise ConfigError("gap and segment duration must be > 0 seconds")
        if not 0 < self.heartbeat_s * 1000 <= MAX_CAPPED_MS:
            raise ConfigError("heartbeat must be in (0, 60] seconds: played_ms is capped at 60 s")
        if self.media_kind not in (None, "video", "audio"):
            raise ConfigError("media kind is video or audio")
        line = _compile(self.line_pattern, "line pattern")
        missing = [g for g in _LINE_GROUPS if g not in line.groupindex]
        if missing:
            raise ConfigError(f"the line pattern needs the named groups {', '.join(missing)}")
        segment = _compile(self.segment_pattern, "segment pattern")
        if "stream" not in segment.groupindex:
            raise ConfigError("the segment pattern needs a named group stream")


def _compile(pattern: str, what: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"{what}: {exc}") from None


@dataclass
class ImportReport:
    """What one import read and wrote."""

    lines: int = 0
    segments: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    malformed: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # "file:line: reason" of the first few
    clients: int = 0
    plays: int = 0
    events: int = 0
    played_ms: int = 0

    def render(self) -> str:
        out = [
            f"lines read        {self.lines}",
            f"segment requests  {self.segments}",
            f"skipped           {sum(self.skipped.values())} {dict(sorted(self.skipped.items()))}",
            f"malformed         {sum(self.malformed.values())} "
            f"{dict(sorted(self.malformed.items()))}",
            f"clients           {self.clients}",
            f"plays             {self.plays}",
            f"events written    {self.events}",
            f"played minutes    {self.played_ms / 60_000:.1f}",
        ]
        out += [f"  malformed: {example}" for example in self.examples]
        return "\n".join(out)


@dataclass(frozen=True)
class _Hit:
    ts: int
    segment: str
    duration_ms: int


@dataclass
class _Client:
    ua: str
    ip_class: str
    device_type: str


class _Reader:
    """Lines → segment hits per (device_id, stream); the address stays here."""

    def __init__(self, config: HlsImport, report: ImportReport) -> None:
        self.config = config
        self.report = report
        self.line = re.compile(config.line_pattern)
        self.segment = re.compile(config.segment_pattern)
        self.classifier = IpClassifier.from_file(config.datacenter_cidrs)
        self.clients: dict[str, _Client] = {}
        self.hits: dict[tuple[str, str], list[_Hit]] = defaultdict(list)
        self._devices: dict[tuple[str, str], str] = {}  # (ip, ua) → device_id, this run only

    def bad(self, where: str, problem: LineProblem) -> None:
        self.report.malformed[problem.value] += 1
        if len(self.report.examples) < 20:
            self.report.examples.append(f"{where}: {problem.value}")

    def read(self, where: str, text: str) -> None:
        self.report.lines += 1
        match = self.line.match(text)
        if match is None:
            self.bad(where, LineProblem.UNPARSABLE)
            return
        groups = match.groupdict()
        method = groups.get("method")
        if method is not None and method not in ("GET", "HEAD"):
            self.report.skipped[Skip.METHOD.value] += 1
            return
        status = groups.get("status")
        if status is not None and (
            not status.isdigit() or int(status) not in self.config.ok_statuses
        ):
            self.report.skipped[Skip.STATUS.value] += 1
            return
        path = (groups["path"] or "").split("?", 1)[0]
        if "://" in path:  # an absolute URI in the request line
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        segment = self.segment.match(path)
        if segment is None:
            self.report.skipped[Skip.NOT_SEGMENT.value] += 1
            return
        ts = self.parse_time(groups["time"] or "")
        if ts is None:
            self.bad(where, LineProblem.BAD_TIME)
            return
        address = parse_ip(groups["ip"] or "")
        if address is None:
            self.bad(where, LineProblem.BAD_ADDRESS)
            return
        duration = self.duration(segment.groupdict())
        if duration is None:
            self.bad(where, LineProblem.BAD_DURATION)
            return
        ua = _unescape(groups["ua"] or "")
        if ua == "-":
            ua = ""
        device = self.device(address, ua)
        stream = segment.group("stream")
        key = segment.groupdict().get("seq") or path
        self.hits[(device, stream)].append(_Hit(ts, key, duration))
        self.report.segments += 1

    def parse_time(self, text: str) -> int | None:
        text = text.strip()
        try:
            if re.fullmatch(r"\d+(\.\d+)?", text):
                return round(float(text) * 1000)
            try:
                when = dt.datetime.strptime(text, self.config.time_format)
            except ValueError:
                when = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
        if when.tzinfo is None:  # a log without an offset is read as UTC
            when = when.replace(tzinfo=dt.UTC)
        return round(when.timestamp() * 1000)

    def duration(self, groups: dict[str, str | None]) -> int | None:
        default = round(self.config.segment_s * 1000)
        for name, scale in (("duration_ms", 1.0), ("duration_s", 1000.0)):
            value = groups.get(name)
            if value is not None:
                try:
                    ms = round(float(value) * scale)
                except ValueError:
                    return None
                return ms if 0 < ms <= MAX_CAPPED_MS else None
        return default

    def device(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address, ua: str) -> str:
        marker = (str(address), ua)
        known = self._devices.get(marker)
        if known is not None:
            return known
        digest = hashlib.blake2b(
            f"{self.config.site_id}\0{address}\0{ua}".encode(),
            key=self.config.salt[:64],
            person=b"pm-hls-device",
            digest_size=16,
        )
        device = "h-" + digest.hexdigest()
        self._devices[marker] = device
        self.clients[device] = _Client(ua, self.classifier.classify(address), device_type(ua))
        return device


def _unescape(text: str) -> str:
    """nginx writes `"` and `\\` in a logged string as \\x22 and \\x5C."""
    if "\\" not in text:
        return text
    return re.sub(r"\\x([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def _hash(*parts: object) -> str:
    text = "\0".join(str(p) for p in parts)
    return hashlib.blake2b(text.encode(), person=b"pm-hls-ids", digest_size=16).hexdigest()


def _plays(hits: list[_Hit], gap_ms: int) -> Iterator[list[_Hit]]:
    """Hits of one client on one stream → plays: distinct segments, in time order."""
    play: list[_Hit] = []
    seen: set[str] = set()
    last = None
    for hit in sorted(hits, key=lambda h: (h.ts, h.segment)):
        if last is not None and hit.ts - last > gap_ms:
            yield play
            play, seen = [], set()
        last = hit.ts
        if hit.segment in seen:  # fetched again (a retry): played once
            continue
        seen.add(hit.segment)
        play.append(hit)
    if play:
        yield play


def _events(
    config: HlsImport, device: str, stream: str, client: _Client, play: list[_Hit]
) -> list[dict[str, Any]]:
    site = config.site_id
    play_id = _hash(site, device, stream, play[0].ts)
    heartbeat_ms = round(config.heartbeat_s * 1000)
    base: dict[str, Any] = {
        "type": "media",
        "site_id": site,
        "device_id": device,
        "ua": client.ua,
        "ip_class": client.ip_class,
        "device_type": client.device_type,
        "media_id": stream,
        "play_id": play_id,
        "stream": "live",
    }
    if config.media_kind:
        base["media_kind"] = config.media_kind
    out: list[dict[str, Any]] = []

    def emit(action: str, played: int, ts: int) -> None:
        seq = len(out)
        out.append(
            {
                **base,
                "event_id": _hash(site, play_id, seq),
                "ts": ts,
                "received_at": ts,
                "action": action,
                "played_ms": played,
            }
        )

    emit("start", 0, play[0].ts)
    pending = 0
    last_ts = play[0].ts
    for hit in play:
        if pending and pending + hit.duration_ms > heartbeat_ms:
            emit("heartbeat", pending, last_ts)
            pending = 0
        pending += hit.duration_ms
        last_ts = hit.ts
    emit("end", pending, last_ts)
    return out


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as raw:
        for number, line in enumerate(raw, 1):
            yield number, line.decode("utf-8", "replace").rstrip("\r\n")


def import_logs(config: HlsImport, paths: Iterable[Path | str], out: IO[bytes]) -> ImportReport:
    """Read the access logs at `paths`, write their media events to `out` as
    JSON Lines (by ts, then play; a play's events in order), return what was done."""
    report = ImportReport()
    reader = _Reader(config, report)
    for path in map(Path, paths):
        try:
            for number, text in _lines(path):
                if text.strip():
                    reader.read(f"{path.name}:{number}", text)
        except (OSError, EOFError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
    gap_ms = round(config.gap_s * 1000)
    events: list[dict[str, Any]] = []
    for (device, stream), hits in reader.hits.items():
        for play in _plays(hits, gap_ms):
            report.plays += 1
            report.played_ms += sum(h.duration_ms for h in play)
            events += _events(config, device, stream, reader.clients[device], play)
    events.sort(key=lambda e: (e["ts"], e["play_id"]))  # stable: a play keeps its order
    for event in events:
        out.write(orjson.dumps(event))
        out.write(b"\n")
    report.clients = len(reader.clients)
    report.events = len(events)
    return report
