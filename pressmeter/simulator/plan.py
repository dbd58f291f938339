"""Planning: how many visits of each kind every outlet gets, hour by local hour.

The hours are those of the configured reporting zone (settings `zone`,
`PM_ZONE`): readers follow the clock where they live, so the morning and evening
peaks fall at the same local hours whatever the zone is.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from random import Random

from pressmeter.simulator.outlets import SimulatedOutlet
from pressmeter.simulator.traffic import cumulative
from pressmeter.simulator.writer import NoiseShares

__all__ = ["BOT", "EMPTY_UA", "HUMAN", "RATE_BURST", "Planner"]

HOUR_MS = 3_600_000
# Relative traffic per local hour 0..23: low at night, peaks 7-9, 12 and 20-22.
HOURLY_WEIGHTS = {
    "reader": (
        1.2,
        0.7,
        0.45,
        0.4,
        0.6,
        1.5,
        3.5,
        5.5,
        6.0,
        5.0,
        4.3,
        4.8,
        5.8,
        4.6,
        3.8,
        3.7,
        3.8,
        4.0,
        4.3,
        5.0,
        6.2,
        6.5,
        5.0,
        2.8,
    ),
    # TV: stronger evening prime time.
    "tv": (
        1.5,
        0.8,
        0.5,
        0.4,
        0.5,
        1.0,
        2.5,
        3.5,
        3.6,
        3.0,
        2.8,
        3.2,
        4.5,
        4.0,
        3.0,
        2.8,
        3.0,
        3.5,
        4.5,
        6.5,
        8.0,
        8.5,
        6.5,
        3.5,
    ),
    # Radio: the morning and evening commutes.
    "radio": (
        0.8,
        0.5,
        0.4,
        0.4,
        0.8,
        2.5,
        5.5,
        7.0,
        6.5,
        5.0,
        4.0,
        4.0,
        4.5,
        4.0,
        3.5,
        3.5,
        4.5,
        6.0,
        6.0,
        4.5,
        5.0,
        5.2,
        3.0,
        1.6,
    ),
}
CURVE_OF_CATEGORY = {"news": "reader", "magazine": "reader", "tv": "tv", "radio": "radio"}
# Prior guess of lines per visit, refined from what is generated (see Planner).
PRIOR_LINES_PER_VISIT = {
    "news": 9.0,
    "magazine": 9.0,
    "tv": 18.0,
    "radio": 24.0,
    "bot": 5.0,
    "empty_ua": 5.0,
}
BURST_HOUR = 20  # rate bursts happen in the evening peak

# Visit kinds a plan can hold; each is one method of Traffic.
HUMAN, BOT, EMPTY_UA, RATE_BURST = range(4)
_NOISE_KIND_NAMES = {BOT: "bot", EMPTY_UA: "empty_ua"}


class Planner:
    """Decides, hour by hour, how many visits of each kind every outlet gets.

    Each outlet is steered onto its Zipf share of `events_per_day`, spread over the
    day by its category's hourly curve. Humans, bots and empty-UA scripts each
    have their own slice of that target and their own line count: the visits
    planned for an hour cover the slice's shortfall, divided by the lines a visit
    of the kind has produced on average so far. (One shared count would let the
    small kinds draw again and again on a shortfall that only a human visit
    fills.) The total therefore lands close to days x events_per_day whatever
    the mix of long media plays and short reads.
    """

    def __init__(
        self, rng: Random, outlets: list[SimulatedOutlet], events_per_day: int, noise: NoiseShares
    ) -> None:
        self._rng = rng
        self.outlets = outlets
        self._per_day = events_per_day
        self._kinds = (
            (BOT, noise.bot_ua),
            (EMPTY_UA, noise.empty_ua),
            (HUMAN, 1.0 - noise.bot_ua - noise.empty_ua),
        )
        self._curves = {name: [0.0, *cumulative(w)] for name, w in HOURLY_WEIGHTS.items()}
        # [lines, visits] per mean key, seeded with a prior worth 20 visits
        self._stats = {k: [v * 20, 20.0] for k, v in PRIOR_LINES_PER_VISIT.items()}
        self._burst_every = noise.rate_burst_every_days
        self.visits = 0

    @staticmethod
    def mean_key(kind: int, outlet: SimulatedOutlet) -> str:
        """Visits that share a lines-per-visit average: human ones by category."""
        return outlet.category if kind == HUMAN else _NOISE_KIND_NAMES[kind]

    def lines_per_visit(self, key: str) -> float:
        lines, visits = self._stats[key]
        return lines / visits

    def record(self, kind: int, index: int, lines: int) -> None:
        """Count a generated visit's lines against its slice, and learn its mean from it."""
        if kind == RATE_BURST:  # bursts come on top of the planned traffic
            return
        outlet = self.outlets[index]
        outlet.lines[kind] += lines
        stats = self._stats[self.mean_key(kind, outlet)]
        stats[0] += lines
        stats[1] += 1

    def plan_hour(self, day: int, hour: int, hour_start: int) -> list[tuple[int, int, int]]:
        """Visits (start ms, kind, outlet index) of one local hour, in start order."""
        rng = self._rng
        plans = []
        for index, outlet in enumerate(self.outlets):
            curve = self._curves[CURVE_OF_CATEGORY[outlet.category]]
            target = self._per_day * outlet.share * (day + curve[hour + 1])
            for kind, share in self._kinds:
                shortfall = target * share - outlet.lines[kind]
                if shortfall <= 0:
                    continue
                # Round to nearest, so a slice ends within half a visit of its target.
                n = int(shortfall / self.lines_per_visit(self.mean_key(kind, outlet)) + 0.5)
                plans.extend(
                    (hour_start + int(rng.random() * HOUR_MS), kind, index) for _ in range(n)
                )
        plans.extend(self._rate_bursts(day, hour, hour_start))
        plans.sort()
        self.visits += len(plans)
        return plans

    def _rate_bursts(self, day: int, hour: int, hour_start: int) -> list[tuple[int, int, int]]:
        """1 or 2 burst devices at BURST_HOUR local on every `rate_burst_every_days`-th day."""
        if self._burst_every <= 0 or day % self._burst_every or hour != BURST_HOUR:
            return []
        rng = self._rng
        shares = cumulative([o.share for o in self.outlets])
        count = 1 + (rng.random() < 0.5)
        return [
            (
                hour_start + int(rng.random() * HOUR_MS),
                RATE_BURST,
                bisect_right(shares, rng.random()),
            )
            for _ in range(count)
        ]

    def size_pools(self, days: int) -> None:
        """Device pools: about a day's visits, growing with the days so readers come back."""
        for outlet in self.outlets:
            human_share = self._kinds[-1][1]
            per_day = (
                self._per_day * outlet.share * human_share / self.lines_per_visit(outlet.category)
            )
            outlet.pool_size = math.ceil(per_day * (0.8 + 0.25 * days)) + 5
