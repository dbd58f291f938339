"""`pressmeter import hls-logs`: its arguments and what it runs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pressmeter.collectors.logs.formats import DEFAULT_SEGMENT_PATTERN, NGINX_COMBINED, NGINX_TIME
from pressmeter.errors import ConfigError

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", metavar="FILE", help="access logs (.gz too)")
    parser.add_argument("--site", required=True, help="the outlet's site_id, e.g. tv1.vn")
    parser.add_argument(
        "--out", required=True, metavar="FILE", help="JSON Lines output (pipeline batch --input)"
    )
    parser.add_argument(
        "--salt-file",
        metavar="FILE",
        help="secret salt of the client hash (≥ 16 bytes; keep it: the same salt gives the "
        "same ids on a re-import); or env PM_HLS_SALT",
    )
    parser.add_argument(
        "--gap",
        type=float,
        default=60.0,
        metavar="S",
        help="a new play after more than S seconds without a segment request (default 60)",
    )
    parser.add_argument(
        "--segment-duration",
        type=float,
        default=6.0,
        metavar="S",
        help="seconds of play per segment, unless the segment pattern captures duration_s or "
        "duration_ms (default 6)",
    )
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=60.0,
        metavar="S",
        help="at most S seconds of play per event, ≤ 60 (default 60)",
    )
    parser.add_argument(
        "--pattern",
        default=NGINX_COMBINED,
        metavar="REGEX",
        help="line regex with named groups ip, time, path, ua (optional: status, method); "
        "default nginx combined",
    )
    parser.add_argument(
        "--time-format",
        default=NGINX_TIME,
        metavar="FMT",
        help="strptime format of the time group (epoch seconds and ISO 8601 are also read); "
        "default %(default)s".replace("%", "%%"),
    )
    parser.add_argument(
        "--segment-pattern",
        default=DEFAULT_SEGMENT_PATTERN,
        metavar="REGEX",
        help="regex on the request path (query removed) naming a segment: group stream "
        "(required), seq, duration_s or duration_ms (optional)",
    )
    parser.add_argument("--media-kind", choices=["video", "audio"], help="of every stream")
    parser.add_argument(
        "--datacenter-cidrs",
        default="",
        metavar="FILE",
        help="CIDR list for ip_class (default schemas/datacenter_cidrs.txt)",
    )


def _salt(path: str | None) -> bytes:
    if path:
        try:
            return Path(path).read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the salt file: {exc}") from exc
    salt = os.environ.get("PM_HLS_SALT", "")
    if not salt:
        raise ConfigError("no salt: give --salt-file FILE or set PM_HLS_SALT")
    return salt.encode()


def run(args: argparse.Namespace) -> int:
    from pressmeter.collectors.logs.hls import HlsImport, import_logs

    config = HlsImport(
        site_id=args.site,
        salt=_salt(args.salt_file),
        gap_s=args.gap,
        segment_s=args.segment_duration,
        heartbeat_s=args.heartbeat,
        line_pattern=args.pattern,
        time_format=args.time_format,
        segment_pattern=args.segment_pattern,
        media_kind=args.media_kind,
        datacenter_cidrs=args.datacenter_cidrs,
    )
    out = Path(args.out)
    partial = out.with_name(out.name + ".partial")
    try:
        with partial.open("wb") as sink:
            report = import_logs(config, args.files, sink)
        partial.replace(out)  # a half-written file is never left under the final name
    finally:
        partial.unlink(missing_ok=True)
    print(report.render(), file=sys.stdout)
    return 0
