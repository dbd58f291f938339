"""Counters for `/metrics` (Prometheus text format 0.0.4).

Several worker processes share the port, and a scrape lands on any one of
them, so each worker writes a snapshot of its counters to a shared folder once
a second (and just before answering a scrape); `/metrics` sums the snapshots of
the workers. Counters only grow and histogram buckets add up, so the sum is
the service's total.
"""

from __future__ import annotations

import bisect
import json
import os
import time
from pathlib import Path

__all__ = ["Counter", "Histogram", "Metrics"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Counter:
    def __init__(self) -> None:
        self.value = 0

    def inc(self, amount: int = 1) -> None:
        self.value += amount


class LabeledCounter:
    def __init__(self) -> None:
        self.values: dict[str, int] = {}

    def inc(self, label: str, amount: int = 1) -> None:
        self.values[label] = self.values.get(label, 0) + amount


class Histogram:
    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, seconds)] += 1
        self.sum += seconds


class Metrics:
    """The service's counters, as one worker holds them."""

    def __init__(self, folder: Path | None = None, worker: int = 0) -> None:
        self.accepted = Counter()
        self.rejected = LabeledCounter()  # events, by RejectReason
        self.refused = LabeledCounter()  # requests, by RequestRefusal
        self.spooled = Counter()
        self.connections_refused = Counter()  # over max_client_connections
        self.kafka_latency = Histogram()
        self.folder = folder
        self.worker = worker
        self._written = 0.0
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)

    def snapshot(self) -> dict:
        return {
            "accepted": self.accepted.value,
            "rejected": self.rejected.values,
            "refused": self.refused.values,
            "spooled": self.spooled.value,
            "connections_refused": self.connections_refused.value,
            "latency_counts": self.kafka_latency.counts,
            "latency_sum": self.kafka_latency.sum,
        }

    def write(self, force: bool = False) -> None:
        """Publish this worker's snapshot (atomic rename), at most once a second."""
        now = time.monotonic()
        if self.folder is None or (not force and now - self._written < 1.0):
            return
        self._written = now
        path = self.folder / f"worker-{self.worker}.json"
        temp = path.with_suffix(f".tmp{os.getpid()}")
        temp.write_text(json.dumps(self.snapshot()))
        os.replace(temp, path)

    def _all_snapshots(self) -> list[dict]:
        if self.folder is None:
            return [self.snapshot()]
        self.write(force=True)
        out = []
        for path in sorted(self.folder.glob("worker-*.json")):
            try:
                out.append(json.loads(path.read_text()))
            except (OSError, ValueError):
                continue
        return out

    def render(self) -> str:
        """The Prometheus text of the whole service."""
        total: dict = {"accepted": 0, "spooled": 0, "connections_refused": 0, "sum": 0.0}
        total.update(rejected={}, refused={})
        counts = [0] * (len(LATENCY_BUCKETS) + 1)
        for snap in self._all_snapshots():
            total["accepted"] += snap["accepted"]
            total["spooled"] += snap["spooled"]
            total["connections_refused"] += snap.get("connections_refused", 0)
            total["sum"] += snap["latency_sum"]
            for name in ("rejected", "refused"):
                for label, value in snap[name].items():
                    total[name][label] = total[name].get(label, 0) + value
            counts = [a + b for a, b in zip(counts, snap["latency_counts"])]
        lines = [
            "# HELP pm_ingest_events_accepted_total Events written (or spooled) for pm.events.v1.",
            "# TYPE pm_ingest_events_accepted_total counter",
            f"pm_ingest_events_accepted_total {total['accepted']}",
            "# HELP pm_ingest_events_rejected_total Events refused, sent to the rejected topic.",
            "# TYPE pm_ingest_events_rejected_total counter",
            *(
                f'pm_ingest_events_rejected_total{{reason="{k}"}} {v}'
                for k, v in sorted(total["rejected"].items())
            ),
            "# HELP pm_ingest_requests_refused_total Requests refused whole (4xx, 429, 503).",
            "# TYPE pm_ingest_requests_refused_total counter",
            *(
                f'pm_ingest_requests_refused_total{{reason="{k}"}} {v}'
                for k, v in sorted(total["refused"].items())
            ),
            "# HELP pm_ingest_events_spooled_total Messages written to the local spool.",
            "# TYPE pm_ingest_events_spooled_total counter",
            f"pm_ingest_events_spooled_total {total['spooled']}",
            "# HELP pm_ingest_connections_refused_total Connections over max_client_connections.",
            "# TYPE pm_ingest_connections_refused_total counter",
            f"pm_ingest_connections_refused_total {total['connections_refused']}",
            "# HELP pm_ingest_kafka_send_seconds Time from hand-over to acks=all acknowledgement.",
            "# TYPE pm_ingest_kafka_send_seconds histogram",
        ]
        running = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), counts):
            running += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            lines.append(f'pm_ingest_kafka_send_seconds_bucket{{le="{le}"}} {running}')
        lines.append(f"pm_ingest_kafka_send_seconds_sum {total['sum']:.6f}")
        lines.append(f"pm_ingest_kafka_send_seconds_count {running}")
        return "\n".join(lines) + "\n"
