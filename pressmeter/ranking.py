"""The monthly ranking of METRICS.md §5: outlets ranked inside their category by
`visitors`, ties sharing a rank, with the other headline metrics beside them.

(Closing a month, freezing it with the hash of its inputs and numbering later
revisions belong to the monthly report, built on this.)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pressmeter import schemas
from pressmeter.documents import read_outlet_registry
from pressmeter.errors import ConfigError
from pressmeter.metrics import MetricRow, metric_rows
from pressmeter.store import Store

__all__ = ["Outlet", "RankedOutlet", "load_outlets", "monthly_ranking", "render_ranking"]


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

    @property
    def engaged_ms_per_visitor(self) -> float:
        return self.metrics.engaged_ms / self.metrics.visitors if self.metrics.visitors else 0.0


def categories() -> tuple[str, ...]:
    """Ranking categories, in the registry schema's order."""
    schema = schemas.load_schema(schemas.OUTLET_REGISTRY_SCHEMA)
    return tuple(schema["properties"]["outlets"]["items"]["properties"]["category"]["enum"])


def load_outlets(path: str) -> dict[str, Outlet]:
    """The outlet registry file, checked against its schema; by site_id."""
    entries = read_outlet_registry(path, schemas.OUTLET_REGISTRY_SCHEMA)
    return {e["site_id"]: Outlet(e["site_id"], e["name"], e["category"]) for e in entries}


def monthly_ranking(
    store: Store, outlets: dict[str, Outlet], month: str
) -> dict[str, list[RankedOutlet]]:
    """Per category, its outlets with data in `month` (YYYY-MM), best first."""
    try:
        first = dt.date.fromisoformat(f"{month}-01")
    except ValueError:
        raise ConfigError(f"not a month (YYYY-MM): {month!r}") from None
    rows = {row.site_id: row for row in metric_rows(store, "month", first, first)}
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
        ranked, rank = [], 0
        for position, (metrics, outlet) in enumerate(members, start=1):
            if position == 1 or metrics.visitors != ranked[-1].metrics.visitors:
                rank = position
            ranked.append(RankedOutlet(rank, outlet, metrics))
        ranking[category] = ranked
    return ranking


def render_ranking(ranking: dict[str, list[RankedOutlet]], month: str, top: int) -> str:
    """A plain-text table per category."""
    lines = [f"Pressmeter monthly ranking, {month} (pm-metrics/1; ranked by visitors)"]
    header = (
        f"{'rank':>4}  {'outlet':<28} {'visitors':>10} {'pageviews':>11} "
        f"{'eng. s/visitor':>14} {'play min':>10} {'reach':>8} {'ama':>8}"
    )
    for category, ranked in ranking.items():
        lines += ["", f"{category} ({len(ranked)} outlets)", header]
        for entry in ranked[:top]:
            m = entry.metrics
            lines.append(
                f"{entry.rank:>4}  {entry.outlet.name[:28]:<28} {m.visitors:>10,} "
                f"{m.pageviews:>11,} {entry.engaged_ms_per_visitor / 1000:>14.1f} "
                f"{m.play_ms / 60000:>10,.0f} {m.media_reach:>8,} {m.ama!s:>8}"
            )
    return "\n".join(lines)
