"""`pressmeter pipeline live`: its arguments and what it runs."""

from __future__ import annotations

import argparse

from pressmeter.config import Settings
from pressmeter.errors import ConfigError
from pressmeter.pipelines.live.timing import LiveTiming

__all__ = ["DESCRIPTION", "add_arguments", "run"]

DESCRIPTION = (
    "Read the event topic unbounded and keep per-minute live figures in ClickHouse "
    "(live_site_minutes, live_channel_minutes; preliminary). Runs until SIGTERM or Ctrl-C; "
    "a restart resumes from the positions committed to the consumer group. The runner is "
    "Prism (deploy/local/prism), workers in this process; other Beam options pass through "
    "(docs/live.md shows Flink)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kafka", metavar="BOOTSTRAP", help="Kafka bootstrap servers; default PM_KAFKA"
    )
    parser.add_argument("--topic", help="default pm.events.v1 (PM_TOPIC)")
    parser.add_argument(
        "--group",
        default="pressmeter-live",
        help="consumer group holding the live job's committed positions (default pressmeter-live)",
    )
    parser.add_argument(
        "--allowed-lateness",
        type=float,
        default=LiveTiming.lateness_ms / 1000,
        metavar="S",
        help="an event counts when sent at most S seconds after its minute ended "
        f"(default {LiveTiming.lateness_ms // 1000}); later ones are left to the batch",
    )
    parser.add_argument(
        "--from-beginning",
        action="store_true",
        help="partitions without a committed position start at their first record "
        "(default: at the records of the live horizon, the last minutes)",
    )
    parser.add_argument(
        "--store",
        help="clickhouse://HOST:PORT/DB (or chdb:PATH, the default); env PM_STORE",
    )


def run(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter.pipelines.live.run import LiveRequest, run_live

    if not 0 <= args.allowed_lateness <= 3600:
        raise ConfigError(
            f"--allowed-lateness must be between 0 and 3600 seconds, not {args.allowed_lateness}"
        )
    request = LiveRequest(
        kafka=args.kafka or settings.kafka,
        store_url=args.store or settings.store,
        zone=settings.zone,
        topic=args.topic or settings.topic,
        group=args.group,
        timing=LiveTiming(lateness_ms=int(args.allowed_lateness * 1000)),
        from_beginning=args.from_beginning,
        beam_args=rest,
    )
    return run_live(request)
