"""Fixtures of the web tag's browser tests: the built tag, a loopback page server,
the real ingest service on private Kafka topics (allowing the page server's
origin), and headless Chromium (tests/web/cdp.py). Installs nothing: chromium,
ffmpeg and collectors/web's node_modules come from deploy/local/web-tools."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ingest"))
from cdp import CHROMIUM, Browser
from ingest_helpers import (
    DATA,
    Ingest,
    Topics,
    create_topics,
    delete_topics,
    free_port,
    kafka_bootstrap,
    write_config,
)
from web_helpers import WEB, Pages


@pytest.fixture(scope="session")
def tag(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """dist/pressmeter.min.js built now from the sources (the build checks the size)."""
    if not (WEB / "node_modules" / "esbuild").exists() or not Path(CHROMIUM).exists():
        pytest.fail("web tools missing: run deploy/local/web-tools")
    out = tmp_path_factory.mktemp("tag")
    done = subprocess.run(
        ["node", "build.mjs", "--outdir", str(out)], cwd=WEB, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return (out / "pressmeter.min.js").read_bytes()


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A 15 s silent WebM (VP8, 64x48, 10 fps) made with ffmpeg."""
    if not shutil.which("ffmpeg"):
        pytest.fail("ffmpeg missing: run deploy/local/web-tools")
    path = tmp_path_factory.mktemp("clip") / "clip.webm"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=64x48:rate=10:duration=15",
            "-c:v",
            "libvpx",
            "-b:v",
            "50k",
            "-an",
            str(path),
        ],
        check=True,
    )
    return path.read_bytes()


@pytest.fixture
def pages(tag: bytes, clip: bytes) -> Iterator[Pages]:
    served = Pages(tag, clip)
    yield served
    served.server.shutdown()
    served.server.server_close()


@pytest.fixture
def ingest(tmp_path: Path, pages: Pages) -> Iterator[Ingest]:
    """The real service on private topics; news1.vn also allows the page server's
    origin. Not started: tests call .start() (one test starts it late)."""
    topics: Topics = create_topics(kafka_bootstrap())
    registry = json.loads((DATA / "outlets.json").read_text())
    for outlet in registry["outlets"]:
        if outlet["site_id"] == "news1.vn":
            outlet["allowed_origins"].append(pages.origin)
    (tmp_path / "outlets.json").write_text(json.dumps(registry))
    port = free_port()
    config = write_config(tmp_path, port, topics)
    text = config.read_text().splitlines()
    text[0] = f"registry = {json.dumps(str(tmp_path / 'outlets.json'))}"
    config.write_text("\n".join(text) + "\n")
    service = Ingest(config, port, tmp_path, topics)
    pages.endpoint = service.url
    yield service
    if service.proc is not None:
        service.stop()
    delete_topics(topics)


@pytest.fixture
def browser() -> Iterator[Browser]:
    b = Browser()
    yield b
    b.close()
