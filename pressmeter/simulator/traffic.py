"""The traffic model: what one visit of each kind sends, event by event.

A reader reads 1 to 6 pages with engagement heartbeats; a viewer or listener
plays live channels or programmes on demand with heartbeats, pauses and
sometimes an end; crawlers and scripts fire quick page views; a rate-burst
device fires more than 30 page views in one minute. Every choice draws from the
one seeded generator, and times are integers in ms (never datetime objects),
since the benchmark generates a million events.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from random import Random
from typing import Any

from pressmeter.simulator.audience import (
    BOT_UAS,
    DEVICE_MIX,
    DEVICE_TYPES,
    EXTERNAL_REFERRERS,
    HUMAN_UAS,
    PROVINCES,
)
from pressmeter.simulator.outlets import SimulatedOutlet, make_article
from pressmeter.simulator.writer import Emitter, NoiseShares

__all__ = ["Traffic", "cumulative"]

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
PAGES_PER_VISIT = (45, 22, 13, 9, 6, 5)  # weights of 1..6 page views
HEARTBEAT_CONTINUE = 0.78  # chance of one more engagement heartbeat: about 3.5 per page
HEARTBEAT_MS = 5_000
LONG_HEARTBEAT_SHARE = 0.06  # tab was hidden and the tag flushed a larger amount
NEW_VISIT_GAP_SHARE = 0.08  # the next page comes after more than 30 min
FROM_OPEN_TAB_SHARE = 0.3  # of those, the reader comes back through a tab left open
ARTICLES_PER_DAY = 50
ARTICLE_TAIL = 350  # readers also open articles up to about a week old
BROADCAST_READ_SHARE = 0.15  # tv/radio visits that only read pages
PAGE_BEFORE_PLAY = 0.3  # tv/radio visits that land on a programme page, then play
SECOND_PLAY = 0.2
LIVE_SHARE = {"tv": 0.6, "radio": 0.75}
PLAY_MEDIAN_MS = {"tv": 6 * MINUTE_MS, "radio": 10 * MINUTE_MS}
PLAY_SIGMA = 1.1
PLAY_CAP_MS = 4 * HOUR_MS
PAUSE_SHARE = 0.03  # per heartbeat period
END_SHARE = 0.5  # plays that send `end`; the others just stop (tab closed)
RATE_BURST_PAGES = (36, 60)  # > 30 page views in one UTC minute, with room for noise


def cumulative(weights: Sequence[float]) -> list[float]:
    """Cumulative shares ending at exactly 1.0, for `bisect_right(cum, random())`."""
    total = float(sum(weights))
    cum, acc = [], 0.0
    for w in weights:
        acc += w
        cum.append(acc / total)
    cum[-1] = 1.0
    return cum


class Traffic:
    """One method per kind of visit. All draw from the one seeded generator."""

    def __init__(self, rng: Random, emitter: Emitter, noise: NoiseShares) -> None:
        self._rng = rng
        self._emit = emitter.emit
        self._counts = emitter.counts
        self._datacenter = noise.datacenter
        self._device_cum = {c: cumulative(w) for c, w in DEVICE_MIX.items()}
        self._province_cum = cumulative([w for _, w in PROVINCES])
        self._referrer_cum = cumulative([w for _, w in EXTERNAL_REFERRERS])
        self._pages_cum = cumulative(PAGES_PER_VISIT)
        self.fresh_devices = 0
        self.day_number = 0  # days since 1970-01-01 of the local day being generated

    # visits that the planner schedules

    def human_visit(self, outlet: SimulatedOutlet, start: int) -> None:
        """A returning or new reader/viewer from the outlet's device pool."""
        rng = self._rng
        base, noise_key = self._pool_device(outlet), None
        if rng.random() < self._datacenter:
            base = {k: v for k, v in base.items() if k != "province"}
            base["ip_class"] = "datacenter"
            noise_key = "datacenter"
        if outlet.category in ("news", "magazine") or rng.random() < BROADCAST_READ_SHARE:
            self._read(outlet, base, noise_key, start)
        else:
            self._watch(outlet, base, noise_key, start)

    def bot_visit(self, outlet: SimulatedOutlet, start: int) -> None:
        """A crawler or script: quick page views, no engagement, no referrer."""
        ua = BOT_UAS[int(self._rng.random() * len(BOT_UAS))]
        self._crawl(outlet, start, ua, "bots")

    def empty_ua_visit(self, outlet: SimulatedOutlet, start: int) -> None:
        """A script that sends no user agent at all."""
        self._crawl(outlet, start, "", "empty_ua")

    def rate_burst(self, outlet: SimulatedOutlet, start: int) -> None:
        """A device with a browser UA that fires > 30 page views in one UTC minute (SIVT-RATE).

        A fresh device, so that its other traffic cannot blur the count.
        """
        rng = self._rng
        base = self._new_device(outlet)
        self.fresh_devices += 1
        self._counts["rate_burst_devices"] += 1
        minute = start // MINUTE_MS * MINUTE_MS
        low, high = RATE_BURST_PAGES
        n = low + int(rng.random() * (high - low + 1))
        for offset in sorted(int(rng.random() * MINUTE_MS) for _ in range(n)):
            self._emit("page_view", minute + offset, base, self._article(outlet), "rate_burst")

    # building blocks

    def _read(
        self, outlet: SimulatedOutlet, base: dict[str, str], noise_key: str | None, t: int
    ) -> None:
        """1 to 6 page views, each followed by engagement heartbeats while the reader reads.

        The first page carries where the reader came from; the next ones the page
        before (internal); a page after a 30-minute gap starts a new visit, from
        outside or from a tab left open on the site.
        """
        rng = self._rng
        pages = bisect_right(self._pages_cum, rng.random()) + 1
        referrer = self._landing_referrer()
        for _ in range(pages):
            article = self._article(outlet)
            page = article if referrer is None else {**article, "referrer": referrer}
            self._emit("page_view", t, base, page, noise_key)
            t = self._engage(article, base, noise_key, t + 800 + int(rng.random() * 3_000))
            if rng.random() < NEW_VISIT_GAP_SHARE:  # back later: a new visit by the 30-min rule
                t += 31 * MINUTE_MS + int(rng.random() * 3 * HOUR_MS)
                if rng.random() < FROM_OPEN_TAB_SHARE:
                    referrer = f"https://{outlet.host}/"
                else:
                    referrer = self._landing_referrer()
            else:
                t += 2_000 + int(rng.expovariate(1 / 20_000))
                referrer = article["url"]

    def _engage(
        self, article: dict[str, str], base: dict[str, str], noise_key: str | None, t: int
    ) -> int:
        """Engagement heartbeats of about 5 s each; returns the time of the last one."""
        rng = self._rng
        page = {"url": article["url"], "content_id": article["content_id"]}
        if "section" in article:
            page["section"] = article["section"]
        beats = 0
        while beats < 200 and rng.random() < HEARTBEAT_CONTINUE:
            beats += 1
            r = rng.random()
            if r < LONG_HEARTBEAT_SHARE:
                engaged = 8_000 + int(r / LONG_HEARTBEAT_SHARE * 37_000)
            else:
                engaged = HEARTBEAT_MS - 250 + int(r * 500)
            t += engaged + int(rng.random() * 3_000)
            self._emit("engagement", t, base, {**page, "engaged_ms": engaged}, noise_key)
        return t

    def _watch(
        self, outlet: SimulatedOutlet, base: dict[str, str], noise_key: str | None, t: int
    ) -> None:
        """A tv/radio visit: maybe a programme page first, then one or two plays.

        Plays in the programme page's player carry its url and section, as the web
        tag sends them; a visit that starts with a play (an app, a smart TV) has
        no URL and no referrer: its source is `direct`.
        """
        rng = self._rng
        page: dict[str, str] = {}
        if rng.random() < PAGE_BEFORE_PLAY:
            referrer = self._landing_referrer()
            article = self._article(outlet)
            page = {"url": article["url"], "section": article["section"]}
            shown = article if referrer is None else {**article, "referrer": referrer}
            self._emit("page_view", t, base, shown, noise_key)
            t += 3_000 + int(rng.random() * 20_000)
        plays = 2 if rng.random() < SECOND_PLAY else 1
        for _ in range(plays):
            play = self._play_fields(outlet, page)
            t = self._play(outlet, base, noise_key, t, play) + 5_000 + int(rng.random() * 55_000)

    def _play_fields(self, outlet: SimulatedOutlet, page: dict[str, str]) -> dict[str, Any]:
        """What every event of one play carries: a live channel, or an episode on demand."""
        rng = self._rng
        category = outlet.category
        channel = outlet.channels[int(rng.random() * len(outlet.channels))]
        play: dict[str, Any] = {
            **page,
            "play_id": f"{rng.getrandbits(64):016x}",
            "media_kind": "video" if category == "tv" else "audio",
            "channel_id": channel,
        }
        if rng.random() < LIVE_SHARE[category]:
            play.update(media_id=channel, stream="live")
        else:
            episode = self.day_number * 3 - int(60 * rng.random() ** 2)
            play.update(media_id=f"{channel}-vod{episode}", stream="vod", content_id=str(episode))
        return play

    def _play(
        self,
        outlet: SimulatedOutlet,
        base: dict[str, str],
        noise_key: str | None,
        t: int,
        play: dict[str, Any],
    ) -> int:
        """start, a heartbeat every 30-60 s reporting the time played, maybe pauses, maybe end.

        Returns the time the play stopped.
        """
        rng = self._rng
        mu = math.log(PLAY_MEDIAN_MS[outlet.category])
        duration = min(int(rng.lognormvariate(mu, PLAY_SIGMA)), PLAY_CAP_MS)
        period = 30_000 + int(rng.random() * 30_000)
        self._emit("media", t, base, {**play, "action": "start", "played_ms": 0}, noise_key)
        played = 0
        while True:
            left = duration - played
            if left <= period:
                t += left
                if rng.random() < END_SHARE:
                    self._emit(
                        "media", t, base, {**play, "action": "end", "played_ms": left}, noise_key
                    )
                return t
            if rng.random() < PAUSE_SHARE:
                step = 1_000 + int(rng.random() * (period - 1_000))
                t += step
                self._emit(
                    "media", t, base, {**play, "action": "pause", "played_ms": step}, noise_key
                )
                t += 5_000 + int(rng.random() * 5 * MINUTE_MS)  # paused, then resumed
            else:
                step = period
                t += step + int(rng.random() * 800)  # a little buffering
                self._emit(
                    "media", t, base, {**play, "action": "heartbeat", "played_ms": step}, noise_key
                )
            played += step

    def _crawl(self, outlet: SimulatedOutlet, t: int, ua: str, noise_key: str) -> None:
        """Page views a second or a few apart, from a device id never seen again."""
        rng = self._rng
        base = {
            "site_id": outlet.site_id,
            "device_id": f"{rng.getrandbits(64):016x}",
            "ua": ua,
            "ip_class": "unknown",
        }
        self.fresh_devices += 1
        for _ in range(1 + int(rng.random() ** 2 * 20)):
            self._emit("page_view", t, base, self._article(outlet), noise_key)
            t += 200 + int(rng.random() * 8_000)

    def _pool_device(self, outlet: SimulatedOutlet) -> dict[str, str]:
        """A device of the outlet's pool, skewed to loyal readers so devices come back."""
        index = int(outlet.pool_size * self._rng.random() ** 2)
        device = outlet.devices.get(index)
        if device is None:
            device = outlet.devices[index] = self._new_device(outlet)
        return device

    def _new_device(self, outlet: SimulatedOutlet) -> dict[str, str]:
        """The event fields a device carries on every event: id, UA, type, province."""
        rng = self._rng
        device_type = DEVICE_TYPES[bisect_right(self._device_cum[outlet.category], rng.random())]
        uas = HUMAN_UAS[device_type]
        return {
            "site_id": outlet.site_id,
            "device_id": f"{rng.getrandbits(64):016x}",
            "ua": uas[int(rng.random() * len(uas))],
            "ip_class": "residential",
            "device_type": device_type,
            "province": PROVINCES[bisect_right(self._province_cum, rng.random())][0],
        }

    def _article(self, outlet: SimulatedOutlet) -> dict[str, str]:
        """Page fields of an article: mostly today's, some up to a week old."""
        number = (
            (self.day_number + 1) * ARTICLES_PER_DAY
            - 1
            - int(ARTICLE_TAIL * self._rng.random() ** 3)
        )
        article = outlet.articles.get(number)
        if article is None:
            article = outlet.articles[number] = make_article(outlet, number)
        return article

    def _landing_referrer(self) -> str | None:
        """Where a visit's first page came from; None: the event has no referrer field."""
        return EXTERNAL_REFERRERS[bisect_right(self._referrer_cum, self._rng.random())][0]
