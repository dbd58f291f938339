"""Benchmark: `pipeline batch --kafka` against `pipeline batch --input` on the same events.

Simulates the events once, writes them to a file and to two 6-partition topics of
the local broker (one uncompressed, one whose producer used lz4), then runs the
batch pipeline from each, round after round, every run a fresh process pinned to
core 0 (`taskset -c 0`) with a fresh chDB store and, for Kafka, a fresh consumer
group. Prints events/s (wall) of every run and the median ratio Kafka/file of the
same rounds, and the same for events per CPU second (steadier when the machine
is shared). Target (issue 11): the Kafka path at ≥ 90 % of the file path.

The broker runs outside the pinned core, as it would on its own machine; on a
shared machine the figures drift, which is why each ratio compares runs of the
same rounds.

    PM_KAFKA=127.0.0.1:9092 .venv/bin/python bench/kafka_vs_file.py [--events 300000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import uuid
from pathlib import Path

import orjson
from batch_pipeline import measure, simulate
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 6
COMPRESSIONS = ("none", "lz4")


def make_topic(bootstrap: str, compression: str) -> str:
    name = f"pmbench.{compression}.{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, PARTITIONS, 1)])[name].result(timeout=30)
    return name


def delete_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.delete_topics([name])[name].result(timeout=30)


def key_of(line: bytes) -> bytes | None:
    """site_id/device_id, as the ingest service keys; none for the simulator's noise."""
    try:
        event = orjson.loads(line)
        return f"{event['site_id']}/{event['device_id']}".encode()
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None


def produce_file(bootstrap: str, topic: str, events_file: Path, compression: str) -> int:
    """Every line of the file, keyed as the ingest service keys."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": compression,
            "linger.ms": 50,
            "batch.size": 1 << 20,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    count = 0
    with events_file.open("rb") as lines:
        for line in lines:
            value = line.rstrip(b"\n")
            producer.produce(topic, value, key_of(value))
            count += 1
            if count % 100_000 == 0:
                producer.flush()
    if producer.flush(60):
        raise SystemExit(f"could not deliver every event to {topic}")
    return count


def run_rounds(
    sources: dict[str, list[str]], folder: Path, rounds: int
) -> dict[str, list[tuple[float, float]]]:
    """(events/s wall, events per CPU second) of each source in each round, printed
    as they come."""
    print(f"{'round':>5} {'source':<10} {'events':>9} {'wall s':>7} {'cpu s':>6} "
          f"{'events/s':>9} {'per cpu s':>9} {'peak MiB':>9}")  # fmt: skip
    rates: dict[str, list[tuple[float, float]]] = {name: [] for name in sources}
    for round_no in range(1, rounds + 1):
        for name, source in sources.items():
            extra = ["--group", f"pmbench-{uuid.uuid4().hex[:8]}"] if name != "file" else []
            read, wall, cpu, peak = measure([*source, *extra], folder / "store", pin=True)
            rates[name].append((read / wall, read / cpu))
            print(
                f"{round_no:>5} {name:<10} {read:>9,} {wall:>7.2f} {cpu:>6.2f} "
                f"{read / wall:>9,.0f} {read / cpu:>9,.0f} {peak:>9,.0f}",
                flush=True,
            )
    return rates


def print_ratios(rates: dict[str, list[tuple[float, float]]]) -> None:
    """Each Kafka source against the file, round by round, wall and CPU."""
    for name, kafka in rates.items():
        if name == "file":
            continue
        for label, which in (("events/s", 0), ("events per CPU s", 1)):
            ratios = [k[which] / f[which] for k, f in zip(kafka, rates["file"])]
            print(
                f"{name} / file, {label}: median ratio {statistics.median(ratios):.2f} "
                f"(rounds: {', '.join(f'{r:.2f}' for r in ratios)})"
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    bootstrap = os.environ.get("PM_KAFKA")
    if not bootstrap:
        raise SystemExit('PM_KAFKA is not set: eval "$(deploy/local/stack env)"')
    with tempfile.TemporaryDirectory(prefix="pm-bench-") as tmp:
        folder = Path(tmp)
        print(f"simulating about {args.events:,} events ...", flush=True)
        events_file = simulate(folder, args.events)
        topics = {c: make_topic(bootstrap, c) for c in COMPRESSIONS}
        try:
            for compression, topic in topics.items():
                sent = produce_file(bootstrap, topic, events_file, compression)
                print(f"produced {sent:,} events to {topic} ({compression})", flush=True)
            sources = {"file": ["--input", str(events_file)]}
            for compression, topic in topics.items():
                sources[f"kafka {compression}"] = ["--kafka", bootstrap, "--topic", topic]
            rates = run_rounds(sources, folder, args.rounds)
        finally:
            for topic in topics.values():
                delete_topic(bootstrap, topic)
    print(f"{os.cpu_count()} cores on this machine, each run pinned to core 0 (machine shared)")
    print_ratios(rates)
    return 0


if __name__ == "__main__":
    sys.exit(main())
