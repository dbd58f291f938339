"""Helpers of the ingest tests (fixtures in conftest.py): private topics on the
real Kafka broker, the real service started as a subprocess on a loopback port, and readers that
return what landed in Kafka.

Every test gets its own topics (`pm.events.v1.t<id>`...), so tests never see
each other's events; the service is the one `pressmeter ingest serve` runs.
Client addresses are chosen with X-Forwarded-For from 127.0.0.1, which the
test config trusts as a proxy.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from pressmeter.collectors.ingest.auth import sign
from pressmeter.jsontext import read_json

BROWSER_UA = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
ORIGIN = "https://news1.vn"
NEWS_KEY = "pk_news1_0123456789"
TV_SECRET = b"s3cret-tv1-0123456789abcdef"
RESIDENTIAL_HN = "14.160.1.2"  # the synthetic table: VN-HN
DATACENTER = "198.51.100.7"  # schemas/datacenter_cidrs.txt (documentation range)


def kafka_bootstrap() -> str:
    bootstrap = os.environ.get("PM_KAFKA")
    if not bootstrap:
        pytest.fail('PM_KAFKA is not set: eval "$(deploy/local/stack env)" after stack start')
    return bootstrap


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Topics:
    bootstrap: str
    events: str
    rejected: str


def create_topics(bootstrap: str, partitions: int = 3) -> Topics:
    suffix = uuid.uuid4().hex[:10]
    topics = Topics(bootstrap, f"pm.events.v1.t{suffix}", f"pm.events.rejected.v1.t{suffix}")
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=20_000)
    try:
        admin.create_topics(
            [NewTopic(topics.events, partitions, 1), NewTopic(topics.rejected, 1, 1)]
        )
    finally:
        admin.close()
    return topics


def delete_topics(topics: Topics) -> None:
    admin = KafkaAdminClient(bootstrap_servers=topics.bootstrap, request_timeout_ms=20_000)
    try:
        admin.delete_topics([topics.events, topics.rejected])
    except Exception:
        pass
    finally:
        admin.close()


def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes, dict[str, Any], int]]:
    """Every record of `topic` as (key, value, partition), up to the end offsets now."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=30_000
    )
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        out: list[tuple[bytes, dict[str, Any], int]] = []
        deadline = time.monotonic() + 60
        while any(consumer.position(p) < end[p] for p in parts):
            assert time.monotonic() < deadline, "reading the topic took over 60 s"
            for records in consumer.poll(timeout_ms=500, max_records=10_000).values():
                out += [(r.key, read_json(r.value), r.partition) for r in records]
        return out
    finally:
        consumer.close()


@dataclass
class Ingest:
    """A running `pressmeter ingest serve` and what it was started with."""

    config_path: Path
    port: int
    folder: Path
    topics: Topics
    settings: dict[str, Any] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    open_files: int | None = None  # RLIMIT_NOFILE (soft and hard) of the service

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, wait: bool = True) -> None:
        log = open(self.folder / "ingest.log", "ab")  # noqa: SIM115 - kept by the child
        self.proc = subprocess.Popen(
            [
                str(REPO / ".venv/bin/pressmeter"),
                "ingest",
                "serve",
                "--config",
                str(self.config_path),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.folder,
            start_new_session=True,
            preexec_fn=None if self.open_files is None else self._limit_open_files,
        )
        if wait:
            self.wait_ready()

    def _limit_open_files(self) -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (self.open_files, self.open_files))

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            try:
                if requests.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    # every worker answers: each binds on its own
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"ingest did not start in {timeout} s:\n{self.log()}")

    def stop(self) -> int:
        """SIGTERM, a graceful shutdown; returns the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=60)
        self.proc = None
        return code

    def kill9(self) -> None:
        """SIGKILL to the whole process group: parent and workers at once."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.proc = None

    def log(self) -> str:
        path = self.folder / "ingest.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def events(self) -> list[tuple[bytes, dict[str, Any], int]]:
        return read_topic(self.topics.bootstrap, self.topics.events)

    def rejected(self) -> list[tuple[bytes, dict[str, Any], int]]:
        return read_topic(self.topics.bootstrap, self.topics.rejected)


def bench_service(workers: int, partitions: int = 6, prefix: str = "pm-ingest-bench-") -> Ingest:
    """For bench/: a service on private topics of the local Kafka, outlet limits
    off, in a temp folder; not started."""
    import tempfile

    topics = create_topics(kafka_bootstrap(), partitions=partitions)
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    port = free_port()
    limits = {"outlet_events_per_s": 1e9, "outlet_burst": 1e9}
    config = write_config(folder, port, topics, server={"workers": workers}, limits=limits)
    return Ingest(config, port, folder, topics)


def service_pids(pid: int) -> list[int]:
    """`pid` and its running children (the service's workers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [pid, *(int(p) for p in children.read_text().split())] if children.exists() else [pid]


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)


def write_config(folder: Path, port: int, topics: Topics, **sections: dict[str, Any]) -> Path:
    base: dict[str, dict[str, Any]] = {
        "server": {
            "host": "127.0.0.1",
            "port": port,
            "workers": 1,
            "trusted_proxies": ["127.0.0.1/32"],
            "shutdown_timeout_s": 10.0,
        },
        "kafka": {
            "bootstrap": topics.bootstrap,
            "topic": topics.events,
            "rejected_topic": topics.rejected,
            "ack_timeout_ms": 10_000,  # a cold broker can take seconds to ack the first send
        },
        "spool": {"dir": str(folder / "spool")},
        "enrich": {"geoip_csv": str(DATA / "provinces.csv")},
        "limits": {"client_requests_per_s": 100000.0, "client_burst": 100000.0},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines = [f"registry = {json.dumps(str(DATA / 'outlets.json'))}"]
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {_toml(v)}" for k, v in values.items()]
    path = folder / "ingest.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def page_view(event_id: str, ts: int | None = None, **fields: Any) -> dict[str, Any]:
    """A page_view as a browser tag sends it: no received_at, ip_class or ua."""
    base = {
        "event_id": event_id,
        "type": "page_view",
        "device_id": "dev-a",
        "ts": int(time.time() * 1000) if ts is None else ts,
        "url": "https://news1.vn/a",
    }
    base.update(fields)
    return base


def pixel_params(event_id: str) -> dict[str, str]:
    """The query string of a page view sent to the pixel endpoint."""
    return {
        "site_id": "news1.vn",
        "key": NEWS_KEY,
        "event_id": event_id,
        "type": "page_view",
        "device_id": "dev-px",
        "ts": str(int(time.time() * 1000)),
        "url": "https://news1.vn/p",
    }


def browser_post(
    url: str, events: list[Any], ip: str = RESIDENTIAL_HN, **extra: Any
) -> requests.Response:
    """POST /v1/events as the web tag does it (text/plain, like sendBeacon)."""
    body = {"site_id": "news1.vn", "key": NEWS_KEY, "events": events, **extra}
    headers = {
        "Origin": ORIGIN,
        "Content-Type": "text/plain;charset=UTF-8",
        "User-Agent": BROWSER_UA,
        "X-Forwarded-For": ip,
    }
    return requests.post(f"{url}/v1/events", data=orjson.dumps(body), headers=headers, timeout=30)


def signed_post(
    url: str, body: bytes, ts: int | None = None, secret: bytes = TV_SECRET, site: str = "tv1.vn"
) -> tuple[requests.Response, dict[str, str]]:
    """POST /v1/events as a server does it: HMAC-signed (X-PM-Site/-Timestamp/-Signature)."""
    stamp = str(int(time.time()) if ts is None else ts)
    signature = sign(secret, "POST", "/v1/events", stamp, body)
    headers = {
        "X-PM-Site": site,
        "X-PM-Timestamp": stamp,
        "X-PM-Signature": signature,
        "Content-Type": "application/json",
    }
    return requests.post(f"{url}/v1/events", data=body, headers=headers, timeout=30), headers


def metrics(url: str) -> dict[str, float]:
    """GET /metrics as {sample name with its labels: value}, e.g.
    `pm_ingest_requests_refused_total{reason="bad_key"}` → 1.0."""
    text = requests.get(f"{url}/metrics", timeout=10).text
    samples = (line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    return {name: float(value) for name, value in samples}
