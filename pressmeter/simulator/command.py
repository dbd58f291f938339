"""`pressmeter simulate`: its options, its progress line and its report."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

from pressmeter.calendar import DEFAULT_ZONE
from pressmeter.simulator.simulation import SimulationSummary, default_registry_path, simulate

__all__ = ["DEFAULT_START", "add_arguments", "format_summary", "run"]

DEFAULT_START = dt.date(2026, 10, 1)


def _parse_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `pressmeter simulate`."""
    parser.add_argument(
        "--outlets",
        type=int,
        required=True,
        metavar="N",
        help="number of outlets (about 55%% news, 15%% each tv, radio and "
        "magazine; at least one of each from 4 on)",
    )
    parser.add_argument(
        "--days",
        type=int,
        required=True,
        metavar="D",
        help="number of local days to simulate, in the reporting zone "
        "(setting zone, PM_ZONE; default Asia/Ho_Chi_Minh)",
    )
    parser.add_argument(
        "--start",
        type=_parse_date,
        default=DEFAULT_START,
        metavar="DATE",
        help="first local day, YYYY-MM-DD (default: %(default)s)",
    )
    parser.add_argument(
        "--events-per-day",
        type=int,
        default=30000,
        metavar="N",
        help="events per day across all outlets, noise included (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=1,
        help="random seed; the same arguments give byte-identical files (default: %(default)s)",
    )
    parser.add_argument(
        "--registry",
        type=Path,
        default=None,
        metavar="FILE",
        help="where to write the outlet registry JSON (default: next to --out, "
        "named <out without .jsonl/.jsonl.gz>.outlets.json)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="FILE",
        help="events file, JSON Lines; gzip-compressed when it ends with .gz",
    )


class _ProgressLine:
    """Prints `simulate: 40%` to stderr each time another tenth is done."""

    def __init__(self) -> None:
        self._shown = 0

    def __call__(self, fraction: float) -> None:
        tenth = int(fraction * 10 + 1e-9)
        if tenth > self._shown:
            self._shown = tenth
            print(f"simulate: {tenth * 10}%", file=sys.stderr, flush=True)


def format_summary(s: SimulationSummary) -> str:
    """The human-readable report `pressmeter simulate` prints when done."""

    def share(n: int) -> str:
        return f"{n:,} ({n / s.events_written:.2%})" if s.events_written else str(n)

    types = ", ".join(f"{t} {n:,}" for t, n in s.by_type.items())
    categories = ", ".join(f"{c} {n}" for c, n in s.outlets_by_category.items())
    return "\n".join(
        [
            f"simulate: wrote {s.events_written:,} events to {s.out}",
            f"  by type: {types}",
            f"  bots: {share(s.bots)}, empty UA: {share(s.empty_ua)}, "
            f"data-centre: {share(s.datacenter)}",
            f"  SIVT-RATE: {s.rate_burst_devices} devices, {s.rate_burst_events:,} events; "
            f"duplicates: {share(s.duplicates)}; late: {share(s.late)}; "
            f"malformed: {share(s.malformed)}",
            f"  outlets: {sum(s.outlets_by_category.values())} ({categories}) in {s.registry}",
            f"  visits: {s.visits:,}, devices: {s.devices:,}",
            f"  {s.seconds:.1f} s, {s.events_per_second:,.0f} events/s",
        ]
    )


def run(args: argparse.Namespace, zone: str = DEFAULT_ZONE) -> int:
    """Run `pressmeter simulate` in the reporting `zone`: 0 when done, 2 with a
    one-line error on a bad argument."""
    try:
        out = Path(args.out)
        registry = Path(args.registry) if args.registry else default_registry_path(out)
        summary = simulate(
            args.outlets,
            args.days,
            args.start,
            out,
            registry,
            seed=args.seed,
            events_per_day=args.events_per_day,
            progress=_ProgressLine(),
            zone=zone,
        )
    except ValueError as exc:
        print(f"pressmeter simulate: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f" {exc.filename}" if exc.filename else ""
        print(
            f"pressmeter simulate: error: cannot write{where}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 2
    print(format_summary(summary))
    return 0
