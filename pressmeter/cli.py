"""The `pressmeter` command."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import logging
import sys
from collections.abc import Callable
from typing import TextIO

from pressmeter.config import Settings, load_settings
from pressmeter.errors import ConfigError, PressmeterError
from pressmeter.metrics import DIMENSIONS

__all__ = ["main"]

log = logging.getLogger("pressmeter")
Handler = Callable[[argparse.Namespace, Settings, list[str]], int]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text if len(text) > 7 else f"{text}-01")
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD or YYYY-MM): {text!r}") from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        help="chdb:PATH (embedded, the default: chdb:pressmeter-data) or "
        "clickhouse://HOST:PORT/DB; env PM_STORE",
    )


def pipeline_batch(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter.closing import closed_months_touched
    from pressmeter.store import open_store

    run_id = _run_batch(args, settings, rest)
    for closed in closed_months_touched(open_store(args.store or settings.store), run_id):
        log.warning(
            "%s is closed (revision %d) and this run stored events of it: it still reports "
            "revision %d; `pressmeter close month %s` records a new revision if a figure changed",
            closed.month,
            closed.revision,
            closed.revision,
            closed.month,
        )
    return 0


def _run_batch(args: argparse.Namespace, settings: Settings, rest: list[str]) -> str:
    """The batch of `pipeline batch` (and of `close month`), its summary printed; its run id."""
    from pressmeter.pipelines.batch import BatchRequest, run_batch
    from pressmeter.runtime import tune_for_batch

    tune_for_batch()
    request = BatchRequest(
        store_url=args.store or settings.store,
        zone=settings.zone,
        inputs=args.input or [],
        kafka=(args.kafka or settings.kafka) if args.kafka is not None else None,
        topic=args.topic or settings.topic,
        group=args.group or settings.group,
        beam_args=rest,
        breakdowns=not args.no_breakdowns,
        **({"step_records": args.step_records} if args.step_records else {}),
    )
    if args.rejected_topic is not None:
        request = dataclasses.replace(request, rejected_topic=args.rejected_topic)
    summary = run_batch(request)
    print(summary.render())
    return summary.run_id


def pipeline_live(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter.pipelines.live import command

    return command.run(args, settings, rest)


def pipeline_recompute(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter.pipelines.recompute import RecomputeRequest, recompute
    from pressmeter.runtime import tune_for_batch

    tune_for_batch()
    request = RecomputeRequest(
        store_url=args.store or settings.store,
        zone=settings.zone,
        first=args.from_date,
        last=args.to_date,
        site_id=args.site,
        beam_args=rest,
    )
    print(recompute(request).render())
    return 0


def pipeline_compact(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter.pipelines.compaction import compact

    _no_extra(rest)
    print(compact(args.store or settings.store, settings.zone).render())
    return 0


def metrics_provenance(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter.metrics import provenance
    from pressmeter.store import open_store

    _no_extra(rest)
    print(provenance(open_store(args.store or settings.store), args.site, args.day).render())
    return 0


def metrics_export(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter.metrics import BREAKDOWN_COLUMNS, breakdown_rows, write_csv
    from pressmeter.reporting import reported_rows, write_csv_with_status
    from pressmeter.store import open_store

    _no_extra(rest)
    store = open_store(args.store or settings.store)
    period = (args.grain, args.from_date, args.to_date, args.site)

    def write(out: TextIO) -> int:
        if args.by:
            return write_csv(breakdown_rows(store, args.by, *period), out, BREAKDOWN_COLUMNS)
        rows = reported_rows(store, settings.zone, *period, newest=args.newest)
        if args.with_status:
            return write_csv_with_status(rows, out)
        return write_csv((reported.row for reported in rows), out)

    if args.out:
        with open(args.out, "w", encoding="utf-8", newline="") as out:
            count = write(out)
        log.info("wrote %d rows to %s", count, args.out)
    else:
        write(sys.stdout)
    return 0


def rejects(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter.rejects import reject_counts, render_table, write_csv
    from pressmeter.store import open_store

    _no_extra(rest)
    rows = reject_counts(
        open_store(args.store or settings.store),
        settings.zone,
        args.from_date,
        args.to_date,
        args.site,
    )
    if args.format == "csv":
        write_csv(rows, sys.stdout)
    else:
        print(render_table(rows))
    return 0


def ranking(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter import ranking as ranks
    from pressmeter.reporting import reported_channels, reported_ranking
    from pressmeter.store import open_store

    _no_extra(rest)
    registry = args.outlets or settings.outlets
    if args.ivt_threshold is not None:
        settings = dataclasses.replace(settings, ivt_threshold=args.ivt_threshold)
    threshold = settings.ivt_threshold_fraction()
    outlets = ranks.load_outlets(registry) if registry else None
    store = open_store(args.store or settings.store)
    if args.channels:
        channels, status = reported_channels(store, args.month, settings.zone, outlets, args.newest)
        print(ranks.render_channels(channels, args.month, args.top))
    else:
        table, status = reported_ranking(
            store, args.month, settings.zone, outlets, args.newest, ivt_threshold=threshold
        )
        print(ranks.render_ranking(table, args.month, args.top))
    print(status)
    return 0


def close_month(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter import closing
    from pressmeter.ranking import load_outlets
    from pressmeter.store import open_store

    now_ms = closing.parse_instant(args.at, settings.zone) if args.at else closing.current_ms()
    closing.refuse_if_not_due(args.month, settings.zone, now_ms)
    if args.input or args.kafka is not None:
        _run_batch(args, settings, rest)
    else:
        _no_extra(rest)
    registry = args.outlets or settings.outlets
    outlets = load_outlets(registry) if registry else None
    store = open_store(args.store or settings.store)
    threshold = settings.ivt_threshold_fraction()
    result = closing.close_month(store, args.month, settings.zone, outlets, now_ms, threshold)
    print(result.render())
    return 0


def close_status(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter import closing
    from pressmeter.store import open_store

    _no_extra(rest)
    store = open_store(args.store or settings.store)
    print(closing.render_status(closing.revisions(store, args.month), store, args.changes))
    return 0


def simulate(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter.simulator import command

    _no_extra(rest)
    return command.run(args, settings.zone)


def ingest_serve(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter.collectors.ingest import load_config, serve

    _no_extra(rest)
    return serve(load_config(args.ingest_config), args.log_level)


def import_hls_logs(args: argparse.Namespace, settings: Settings, rest: list[str]) -> int:
    from pressmeter.collectors.logs import command

    _no_extra(rest)
    return command.run(args)


def _no_extra(rest: list[str]) -> None:
    if rest:
        raise ConfigError(f"unrecognized arguments: {' '.join(rest)}")


def _period_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="from_date",
        type=_date,
        metavar="DATE",
        help="first day (YYYY-MM-DD) or month (YYYY-MM)",
    )
    parser.add_argument(
        "--to", dest="to_date", type=_date, metavar="DATE", help="last day or month, inclusive"
    )
    parser.add_argument("--site", metavar="ID", help="one site only")


def _closed_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--newest",
        action="store_true",
        help="a closed month's figures as computed now, not its newest frozen revision",
    )


def _batch_options(parser: argparse.ArgumentParser, required: bool) -> None:
    """What a batch reads: files or a Kafka slice (`pipeline batch`, `close month`)."""
    source = parser.add_mutually_exclusive_group(required=required)
    source.add_argument(
        "--input",
        nargs="+",
        metavar="FILE",
        help="JSON Lines files (.gz too), one canonical event a line",
    )
    source.add_argument(
        "--kafka",
        nargs="?",
        const="",
        metavar="BOOTSTRAP",
        help="read Kafka from the group's committed offsets to the end offsets "
        "seen at start; default bootstrap from settings (PM_KAFKA)",
    )
    parser.add_argument("--topic", help="default pm.events.v1 (PM_TOPIC)")
    parser.add_argument("--group", help="consumer group, default pressmeter-batch (PM_GROUP)")
    parser.add_argument(
        "--rejected-topic",
        metavar="TOPIC",
        help="the ingest service's dead letters, read with --kafka into the rejected "
        "events (stage 'ingest'); default pm.events.rejected.v1, '' for none",
    )
    parser.add_argument(
        "--no-breakdowns",
        action="store_true",
        help="site figures only, no §8 rows for the site-days recomputed (to measure what "
        "§8 costs; a later run with them recomputes only the devices it touches)",
    )
    parser.add_argument(
        "--step-records",
        type=_positive,
        metavar="N",
        help="read the input in steps of at most N records, one ingest pipeline each: "
        "memory grows with N, not with the input (default 500000)",
    )


def _close_parser(commands: argparse._SubParsersAction) -> None:
    """`close month` and `close status` (docs/standard.md §5, pressmeter/closing.py)."""
    close = commands.add_parser("close", help="close months: freeze their figures (§5)")
    close_commands = close.add_subparsers(dest="close_command", required=True, metavar="ACTION")
    month = close_commands.add_parser(
        "month",
        help="run the batch of what is due, then freeze the month as its next revision",
        description="Close a month, 3 days after it ends in the reporting zone: run the "
        "batch of what is due (--input or --kafka, as `pipeline batch`; without them, "
        "what is stored), then freeze the month's figures per outlet, its ranking (with an "
        "outlet registry), the hash of its inputs, the metrics and list versions. A month "
        "closed before gets a new revision only if a figure or an input changed.",
    )
    month.add_argument("month", metavar="YYYY-MM")
    month.add_argument(
        "--at",
        metavar="TIME",
        help="close as of this time (ISO, reporting zone unless an offset is given) "
        "instead of now: for replaying a close and for tests",
    )
    month.add_argument("--outlets", metavar="FILE", help="outlet registry JSON (PM_OUTLETS)")
    _batch_options(month, required=False)
    _store_option(month)
    month.set_defaults(handler=close_month)
    status = close_commands.add_parser(
        "status", help="the closed months: revision, time, hash of the inputs"
    )
    status.add_argument("--month", metavar="YYYY-MM", help="one month only")
    status.add_argument(
        "--changes", action="store_true", help="also what each revision changed, per figure"
    )
    _store_option(status)
    status.set_defaults(handler=close_status)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pressmeter",
        description="Pressmeter: press audience measurement to the pm-metrics/1 standard.",
    )
    parser.add_argument(
        "--config",
        help="settings file (TOML); env PM_CONFIG; default ./pressmeter.toml when present",
    )
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default INFO",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pipeline = commands.add_parser("pipeline", help="run the Beam pipelines")
    pipeline_commands = pipeline.add_subparsers(
        dest="pipeline_command", required=True, metavar="MODE"
    )
    batch = pipeline_commands.add_parser(
        "batch",
        help="read a bounded input, count it, commit",
        description="Read JSON Lines files or a bounded slice of a Kafka topic, validate, "
        "deduplicate, remove invalid traffic, recompute the facts of every site and day "
        "touched, and commit. Unknown options go to Apache Beam (e.g. --runner=FlinkRunner); "
        "the default is Beam's local FnApiRunner, in this process. Workers outside this "
        "process (multi_processing, Flink, Dataflow) need --store clickhouse://...",
    )
    _batch_options(batch, required=True)
    _store_option(batch)
    batch.set_defaults(handler=pipeline_batch)

    from pressmeter.pipelines.live import command as live_command

    live = pipeline_commands.add_parser(
        "live",
        help="per-minute live figures from Kafka, unbounded",
        description=live_command.DESCRIPTION,
    )
    live_command.add_arguments(live)
    live.set_defaults(handler=pipeline_live)

    again = pipeline_commands.add_parser(
        "recompute",
        help="recompute stored days under the current lists, without reading inputs",
        description="Recompute the facts and breakdowns of the stored events of the chosen "
        "days under the lists shipped now (bots, search, social), as a new generation. "
        "The data-centre verdict stays the one taken at ingest (the address is not stored).",
    )
    _period_options(again)
    _store_option(again)
    again.set_defaults(handler=pipeline_recompute)

    compaction = pipeline_commands.add_parser(
        "compact",
        help="delete the per-device rows newer runs superseded",
        description="Delete the device_days and device_values rows that a newer committed "
        "run recomputed (no figure reads them again; every run that sums a site-day whole "
        "passes over them), and the rows committed runs used only while they ran. Events, "
        "facts, breakdowns, the ledger and closed months are kept. Refuses while a run is "
        "writing to the store.",
    )
    _store_option(compaction)
    compaction.set_defaults(handler=pipeline_compact)

    metrics = commands.add_parser("metrics", help="read the computed metrics")
    metrics_commands = metrics.add_subparsers(
        dest="metrics_command", required=True, metavar="ACTION"
    )
    export = metrics_commands.add_parser(
        "export",
        help="CSV of docs/standard.md §4 (or §8 with --by)",
        description="Write the pm-metrics/1 export CSV, sorted by period then site_id "
        "(with --by: then by value, by the bytes of its UTF-8 text).",
    )
    export.add_argument("--grain", choices=["day", "month"], default="day")
    _period_options(export)
    export.add_argument(
        "--by",
        choices=list(DIMENSIONS),
        metavar="DIMENSION",
        help=f"§8 breakdown by one dimension: {', '.join(DIMENSIONS)}",
    )
    export.add_argument("--out", metavar="FILE", help="write here instead of stdout")
    _closed_options(export)
    export.add_argument(
        "--with-status",
        action="store_true",
        help="one more column, status: preliminary, final (for now) or closed-rN",
    )
    _store_option(export)
    export.set_defaults(handler=metrics_export)

    refused = commands.add_parser(
        "rejects",
        help="refused events by day, stage, site and reason",
        description="Count the events refused at ingest (the ingest service's dead letters) "
        "and by the pipeline, of committed runs, per local day, stage, site and reason. A "
        "day is the day the event was refused (the pipeline's: its run's).",
    )
    refused.add_argument(
        "--from", dest="from_date", type=_date, metavar="DATE", help="first day (YYYY-MM-DD)"
    )
    refused.add_argument(
        "--to", dest="to_date", type=_date, metavar="DATE", help="last day, inclusive"
    )
    refused.add_argument("--site", metavar="ID", help="one site only")
    refused.add_argument("--format", choices=["table", "csv"], default="table")
    _store_option(refused)
    refused.set_defaults(handler=rejects)

    origin = metrics_commands.add_parser(
        "provenance",
        help="which runs, inputs and list versions a site's day came from",
        description="Show the run whose facts are current for a site and day, the metrics "
        "and list versions they were computed under, and the runs and inputs (content "
        "hashes, positions) that stored their events.",
    )
    origin.add_argument("--site", required=True, metavar="ID")
    origin.add_argument("--day", required=True, type=_date, metavar="YYYY-MM-DD")
    _store_option(origin)
    origin.set_defaults(handler=metrics_provenance)

    rank = commands.add_parser(
        "ranking",
        help="monthly ranking of outlets per category (docs/standard.md §5)",
        description="Rank outlets inside their category by visitors for one month.",
    )
    rank.add_argument("--month", required=True, help="YYYY-MM")
    rank.add_argument("--outlets", metavar="FILE", help="outlet registry JSON (PM_OUTLETS)")
    rank.add_argument("--top", type=int, default=5, help="outlets shown per category")
    rank.add_argument(
        "--channels",
        action="store_true",
        help="rank the channels of tv and of radio by ama instead (docs/standard.md §5); "
        "a closed month shows its frozen channel ranking unless --newest",
    )
    rank.add_argument(
        "--ivt-threshold",
        metavar="RATE",
        help="flag outlets whose IVT rate is above this: 0.1 or 10%% "
        "(PM_IVT_THRESHOLD; default 10%%)",
    )
    _closed_options(rank)
    _store_option(rank)
    rank.set_defaults(handler=ranking)

    sim = commands.add_parser(
        "simulate",
        help="synthetic traffic for demos, tests and benchmarks",
        description="Write realistic synthetic events (JSON Lines) and the outlet registry.",
    )
    from pressmeter.simulator.command import add_arguments

    add_arguments(sim)
    sim.set_defaults(handler=simulate)

    ingest = commands.add_parser("ingest", help="the HTTP ingestion service")
    ingest_commands = ingest.add_subparsers(dest="ingest_command", required=True, metavar="ACTION")
    serve = ingest_commands.add_parser(
        "serve",
        help="serve POST /v1/events, GET /v1/p.gif, /healthz, /metrics",
        description="Accept outlets' events over HTTP, write them to Kafka (acks=all) or a "
        "local spool, then answer. See collectors/ingest/README.md.",
    )
    serve.add_argument(
        "--config",
        dest="ingest_config",
        required=True,
        metavar="FILE",
        help="the ingest service's TOML file (collectors/ingest/ingest.example.toml)",
    )
    serve.set_defaults(handler=ingest_serve)

    importer = commands.add_parser("import", help="turn server logs into canonical events")
    import_commands = importer.add_subparsers(
        dest="import_command", required=True, metavar="FORMAT"
    )
    hls = import_commands.add_parser(
        "hls-logs",
        help="CDN/HLS access logs of live streams → media events (JSON Lines)",
        description="Turn access logs of live TV and radio streams into media events "
        "(start, heartbeats, end) for `pipeline batch --input`. "
        "See docs/integration-broadcaster.md.",
    )
    from pressmeter.collectors.logs.command import add_arguments as add_import_arguments

    add_import_arguments(hls)
    hls.set_defaults(handler=import_hls_logs)
    _close_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Libraries log their own retries at length; our errors already name the problem.
    quiet = logging.DEBUG if args.log_level == "DEBUG" else logging.CRITICAL
    for library in ("kafka", "clickhouse_driver"):
        logging.getLogger(library).setLevel(quiet)
    logging.getLogger("apache_beam").setLevel(quiet)
    from pressmeter.store import close_stores

    try:
        settings = load_settings(args.config)
        return args.handler(args, settings, rest)
    except PressmeterError as exc:
        print(f"pressmeter: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pressmeter: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): not an error of ours
        sys.stderr.close()
        return 0
    finally:
        close_stores()


if __name__ == "__main__":
    sys.exit(main())
