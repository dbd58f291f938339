"""The monthly ranking of docs/standard.md §5: outlets ranked inside their category by
`visitors`, ties sharing a rank, with the other headline metrics and the IVT rate
beside them (flagged above a threshold); and the channels of tv and of radio
ranked by `ama`. visitors and media_reach are exact counts of the per-device
rows, so a rank never depends on the store's backend.

(Closing a month, freezing it with the hash of its inputs and numbering later
revisions belong to the monthly report, built on this.)
"""

from __future__ import annotations

import calendar as month_calendar
import datetime as dt
from dataclasses import dataclass, replace
from fractions import Fraction

from pressmeter import schemas
from pressmeter.documents import read_outlet_registry
from pressmeter.errors import ConfigError
from pressmeter.metrics import (
    NONE_VALUE,
    BreakdownRow,
    MetricRow,
    breakdown_rows,
    exact_audience,
    exact_value_reach,
    metric_rows,
)
from pressmeter.store import Store

__all__ = [
    "CHANNEL_CATEGORIES",
    "DEFAULT_IVT_THRESHOLD",
    "Outlet",
    "RankedChannel",
    "RankedOutlet",
    "channel_ranking",
    "load_outlets",
    "monthly_ranking",
    "render_channels",
    "render_ranking",
]

# §5: an outlet whose IVT rate is above this is flagged (unless the authority sets another).
DEFAULT_IVT_THRESHOLD = Fraction(1, 10)
# §5: the categories whose channels are ranked.
CHANNEL_CATEGORIES = ("tv", "radio")


@dataclass(frozen=True)
class Outlet:
    site_id: str
    name: str
    category: str


@dataclass(frozen=True)
class RankedOutlet:
    rank: int
    outlet: Outlet
    metrics: MetricRow
    flagged: bool = False  # §5: IVT rate above the threshold

    @property
    def engaged_ms_per_visitor(self) -> float:
        return self.metrics.engaged_ms / self.metrics.visitors if self.metrics.visitors else 0.0


@dataclass(frozen=True)
class RankedChannel:
    rank: int
    outlet: Outlet
    metrics: BreakdownRow  # value = the channel_id
    share: Fraction  # §5: its play_ms / the category's channels' play_ms


def _month(month: str) -> tuple[dt.date, dt.date]:
    try:
        first = dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        raise ConfigError(f"not a month (YYYY-MM): {month!r}") from None
    return first, first.replace(day=month_calendar.monthrange(first.year, first.month)[1])


def _ranks(scores: list[int]) -> list[int]:
    """Competition ranks of scores sorted best first: ties share a rank."""
    ranks: list[int] = []
    for position, score in enumerate(scores, start=1):
        ranks.append(ranks[-1] if ranks and score == scores[position - 2] else position)
    return ranks


def categories() -> tuple[str, ...]:
    """Ranking categories, in the registry schema's order."""
    schema = schemas.load_schema(schemas.OUTLET_REGISTRY_SCHEMA)
    return tuple(schema["properties"]["outlets"]["items"]["properties"]["category"]["enum"])


def load_outlets(path: str) -> dict[str, Outlet]:
    """The outlet registry file, checked against its schema; by site_id."""
    entries = read_outlet_registry(path, schemas.OUTLET_REGISTRY_SCHEMA)
    return {e["site_id"]: Outlet(e["site_id"], e["name"], e["category"]) for e in entries}


def monthly_ranking(
    store: Store,
    outlets: dict[str, Outlet],
    month: str,
    ivt_threshold: Fraction = DEFAULT_IVT_THRESHOLD,
) -> dict[str, list[RankedOutlet]]:
    """Per category, its outlets with data in `month` (YYYY-MM), best first."""
    first, last = _month(month)
    exact = exact_audience(store, first, last)
    rows = {
        row.site_id: replace(
            row,
            visitors=exact.get(row.site_id, (0, 0))[0],
            media_reach=exact.get(row.site_id, (0, 0))[1],
        )
        for row in metric_rows(store, "month", first, first)
    }
    ranking: dict[str, list[RankedOutlet]] = {}
    for category in categories():
        members = sorted(
            (
                (rows[o.site_id], o)
                for o in outlets.values()
                if o.category == category and o.site_id in rows
            ),
            key=lambda pair: (-pair[0].visitors, pair[1].site_id),
        )
        ranks = _ranks([metrics.visitors for metrics, _ in members])
        ranking[category] = [
            RankedOutlet(rank, outlet, metrics, metrics.ivt_rate > ivt_threshold)
            for rank, (metrics, outlet) in zip(ranks, members)
        ]
    return ranking


def channel_ranking(
    store: Store, outlets: dict[str, Outlet], month: str
) -> dict[str, list[RankedChannel]]:
    """§5 channels: per category of CHANNEL_CATEGORIES, the `channel` values of
    its outlets ranked by ama (equal play_ms, equal rank), reach exact; `(none)`
    is not a channel."""
    first, last = _month(month)
    reach = exact_value_reach(store, "channel", first, last)
    rows = [
        replace(row, media_reach=reach.get((row.site_id, row.value), 0))
        for row in breakdown_rows(store, "channel", "month", first, first)
        if row.value != NONE_VALUE and row.site_id in outlets
    ]
    ranking: dict[str, list[RankedChannel]] = {}
    for category in CHANNEL_CATEGORIES:
        members = sorted(
            (row for row in rows if outlets[row.site_id].category == category),
            key=lambda row: (-row.play_ms, row.site_id, row.value.encode()),
        )
        total = sum(row.play_ms for row in members)
        ranks = _ranks([row.play_ms for row in members])
        ranking[category] = [
            RankedChannel(
                rank,
                outlets[row.site_id],
                row,
                Fraction(row.play_ms, total) if total else Fraction(0),
            )
            for rank, row in zip(ranks, members)
        ]
    return ranking


def render_ranking(ranking: dict[str, list[RankedOutlet]], month: str, top: int) -> str:
    """A plain-text table per category."""
    lines = [f"Pressmeter monthly ranking, {month} (pm-metrics/1; ranked by visitors)"]
    header = (
        f"{'rank':>4}  {'outlet':<28} {'visitors':>10} {'pageviews':>11} "
        f"{'eng. s/visitor':>14} {'play min':>10} {'reach':>8} {'ama':>8} {'IVT':>7}"
    )
    for category, ranked in ranking.items():
        lines += ["", f"{category} ({len(ranked)} outlets)", header]
        for entry in ranked[:top]:
            m = entry.metrics
            flag = "  FLAGGED: IVT above threshold" if entry.flagged else ""
            lines.append(
                f"{entry.rank:>4}  {entry.outlet.name[:28]:<28} {m.visitors:>10,} "
                f"{m.pageviews:>11,} {entry.engaged_ms_per_visitor / 1000:>14.1f} "
                f"{m.play_ms / 60000:>10,.0f} {m.media_reach:>8,} {m.ama!s:>8} "
                f"{float(m.ivt_rate):>7.1%}{flag}"
            )
    return "\n".join(lines)


def render_channels(ranking: dict[str, list[RankedChannel]], month: str, top: int) -> str:
    """A plain-text table of channels per category."""
    lines = [f"Pressmeter channel ranking, {month} (pm-metrics/1; ranked by ama)"]
    header = (
        f"{'rank':>4}  {'outlet':<24} {'channel':<20} {'ama':>8} {'reach':>8} "
        f"{'play min':>10} {'share':>7}"
    )
    for category, ranked in ranking.items():
        lines += ["", f"{category} ({len(ranked)} channels)", header]
        for entry in ranked[:top]:
            m = entry.metrics
            lines.append(
                f"{entry.rank:>4}  {entry.outlet.name[:24]:<24} {m.value[:20]:<20} "
                f"{m.ama!s:>8} {m.media_reach:>8,} {m.play_ms / 60000:>10,.0f} "
                f"{float(entry.share):>7.1%}"
            )
    return "\n".join(lines)
