"""One simulation run: the registry, then the events of every local hour of every
day, planned then generated in start order, and a summary of what was written.

Same arguments give byte-identical files: every choice comes from one
`random.Random(seed)` and no wall clock is read for the data.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from random import Random

from pressmeter.calendar import DEFAULT_ZONE, LocalCalendar, date_to_day
from pressmeter.simulator.outlets import CATEGORIES, build_outlets, write_registry
from pressmeter.simulator.plan import HOUR_MS, Planner
from pressmeter.simulator.traffic import Traffic
from pressmeter.simulator.writer import (
    MALFORMED_KINDS,
    NOISE,
    Emitter,
    LineSink,
    NoiseShares,
    open_events,
)

__all__ = ["SimulationSummary", "default_registry_path", "local_hours", "simulate"]

LAST_HOUR = 23  # a 25-hour day (daylight saving time ends) plans its extra hour as the last


@dataclass(frozen=True)
class SimulationSummary:
    """What a run wrote. Every count is of lines in the events file.

    `by_type` counts the well-formed lines (duplicate copies included); the noise
    counts (`bots` .. `late`) are of well-formed lines too, so `sum(by_type) +
    malformed == events_written`.
    """

    out: Path
    registry: Path
    events_written: int
    by_type: dict[str, int]
    bots: int  # ua matches schemas/bots.txt
    empty_ua: int
    datacenter: int  # ip_class datacenter
    rate_burst_devices: int
    rate_burst_events: int  # lines of the SIVT-RATE devices
    duplicates: int  # extra copies (same site_id and event_id)
    late: int  # received at least an hour after ts
    malformed: int  # lines a reader must reject
    malformed_by_kind: dict[str, int]
    outlets_by_category: dict[str, int]
    visits: int  # planned visits (a reader back after 30 min makes more by the rule)
    devices: int  # distinct devices
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events_written / self.seconds if self.seconds > 0 else 0.0


def default_registry_path(out: Path) -> Path:
    """`<out name without .jsonl or .jsonl.gz>.outlets.json`, next to `out`."""
    name = out.name
    for suffix in (".jsonl.gz", ".jsonl"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return out.with_name(f"{name}.outlets.json")


def local_hours(calendar: LocalCalendar, day: int) -> Iterator[tuple[int, int]]:
    """(hour of the daily curve, UTC start in ms) of each hour of local `day`.

    A day is 23, 24 or 25 hours long where the zone has daylight saving time.
    """
    start, end = calendar.day_start_ms(day), calendar.day_start_ms(day + 1)
    for hour, hour_start in enumerate(range(start, end, HOUR_MS)):
        yield min(hour, LAST_HOUR), hour_start


def _check_arguments(
    outlets: int, days: int, events_per_day: int, out: Path, registry: Path
) -> None:
    for name, value in (("outlets", outlets), ("days", days), ("events per day", events_per_day)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    if out.resolve() == registry.resolve():
        raise ValueError(f"the registry and the events file are the same path: {out}")
    for path in (out, registry):
        if path.is_dir():
            raise ValueError(f"{path} is a directory, expected a file path")


def _calendar(zone: str) -> LocalCalendar:
    try:
        return LocalCalendar(zone)
    except (ValueError, LookupError):  # ZoneInfoNotFoundError is a KeyError
        raise ValueError(f"unknown time zone {zone!r} (expected e.g. Asia/Ho_Chi_Minh)") from None


@dataclass
class _Run:
    """The parts of one run that share the seeded generator."""

    planner: Planner
    traffic: Traffic
    emitter: Emitter
    sink: LineSink


def _generate(
    run: _Run,
    calendar: LocalCalendar,
    start: dt.date,
    days: int,
    progress: Callable[[float], None] | None,
) -> None:
    """Plan each local hour, then generate its visits in start order."""
    planner, traffic, emitter, sink = run.planner, run.traffic, run.emitter, run.sink
    planner.size_pools(days)
    visit_of_kind = (
        traffic.human_visit,
        traffic.bot_visit,
        traffic.empty_ua_visit,
        traffic.rate_burst,
    )
    first_day = date_to_day(start)
    for day in range(days):
        traffic.day_number = first_day + day
        for hour, hour_start in local_hours(calendar, first_day + day):
            for visit_start, kind, index in planner.plan_hour(day, hour, hour_start):
                sink.flush_before(visit_start)
                before = emitter.lines
                visit_of_kind[kind](planner.outlets[index], visit_start)
                planner.record(kind, index, emitter.lines - before)
            if progress is not None:
                progress((day * 24 + hour + 1) / (days * 24))


def simulate(
    outlets: int,
    days: int,
    start: dt.date,
    out: Path,
    registry: Path,
    seed: int = 1,
    events_per_day: int = 30000,
    progress: Callable[[float], None] | None = None,
    *,
    noise: NoiseShares = NOISE,
    zone: str = DEFAULT_ZONE,
) -> SimulationSummary:
    """Write the registry and about `days x events_per_day` events; return what was written.

    `start` and `days` are local days of `zone`. The events file is written under
    a temporary name and renamed when complete, so a file with the final name is
    never half written.
    """
    out, registry = Path(out), Path(registry)
    _check_arguments(outlets, days, events_per_day, out, registry)
    calendar = _calendar(zone)
    began = time.perf_counter()
    rng = Random(seed)
    outlet_list = build_outlets(outlets, rng)
    for path in (out, registry):
        path.parent.mkdir(parents=True, exist_ok=True)
    write_registry(registry, outlet_list)

    partial = out.with_name(out.name + ".part")
    raw, stream = open_events(partial, gz=out.name.endswith(".gz"))
    try:
        sink = LineSink(stream)
        emitter = Emitter(rng, sink, noise)
        run = _Run(
            Planner(rng, outlet_list, events_per_day, noise),
            Traffic(rng, emitter, noise),
            emitter,
            sink,
        )
        _generate(run, calendar, start, days, progress)
        sink.close()
        if stream is not raw:
            stream.close()
        raw.close()
        os.replace(partial, out)
    except BaseException:
        raw.close()
        partial.unlink(missing_ok=True)
        raise

    counts = emitter.counts
    return SimulationSummary(
        out=out,
        registry=registry,
        events_written=emitter.lines,
        by_type={t: counts[t] for t in ("page_view", "engagement", "media")},
        bots=counts["bots"],
        empty_ua=counts["empty_ua"],
        datacenter=counts["datacenter"],
        rate_burst_devices=counts["rate_burst_devices"],
        rate_burst_events=counts["rate_burst"],
        duplicates=counts["duplicates"],
        late=counts["late"],
        malformed=counts["malformed"],
        malformed_by_kind={k: counts[f"malformed:{k}"] for k in MALFORMED_KINDS},
        outlets_by_category={c: sum(o.category == c for o in outlet_list) for c in CATEGORIES},
        visits=run.planner.visits,
        devices=sum(len(o.devices) for o in outlet_list) + run.traffic.fresh_devices,
        seconds=time.perf_counter() - began,
    )
