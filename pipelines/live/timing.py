"""The live pipeline's clocks (no Beam import: the CLI reads the defaults)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ACTIVE_MINUTES", "MINUTE_MS", "LiveTiming"]

MINUTE_MS = 60_000
# Readers and viewers: devices active in the last 5 minutes, this one included.
ACTIVE_MINUTES = 5


@dataclass(frozen=True)
class LiveTiming:
    """The live pipeline's clocks, in ms: allowed lateness, how long a minute's
    state outlives it (lateness plus a margin for the watermark's own lag), and
    how long after it begins a minute known only from carried devices is written."""

    lateness_ms: int = 120_000
    margin_ms: int = 10_000
    flush_ms: int = 200

    @property
    def state_ms(self) -> int:
        return self.lateness_ms + self.margin_ms

    @property
    def horizon_ms(self) -> int:
        """How far back a record can still change a figure not yet final: events may
        be stamped up to 5 minutes ahead of ingest's clock (docs/standard.md §2), and count
        in the readers and viewers of 4 more minutes than their own."""
        return (5 + ACTIVE_MINUTES) * MINUTE_MS + self.state_ms
