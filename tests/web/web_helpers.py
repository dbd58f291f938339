"""Helpers of the web tag's browser tests (fixtures in conftest.py): the page
server that embeds the documented snippet, and where things are."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
WEB = REPO / "collectors" / "web"
DOC = REPO / "docs" / "integration-news-site.md"
DOC_TAG_SRC = "https://cdn.pressmeter.example/pressmeter.min.js"
DOC_ENDPOINT = "https://collect.pressmeter.example"


def documented_snippet() -> str:
    """The first ```html block after <!-- snippet --> in the integration doc."""
    text = DOC.read_text()
    found = re.search(r"<!-- snippet -->\s*```html\n(.*?)```", text, re.S)
    assert found, f"no snippet block in {DOC}"
    return found.group(1)


class Pages:
    """Serves tests/web/pages/*.html on loopback with the documented snippet in
    place of <!--PM_SNIPPET-->, its URLs pointed at this server and the ingest."""

    def __init__(self, tag: bytes, clip: bytes) -> None:
        self.files: dict[str, tuple[bytes, str]] = {
            "/pressmeter.min.js": (tag, "text/javascript"),
            "/clip.webm": (clip, "video/webm"),
        }
        self.snippet = documented_snippet()
        self.attrs = ""
        pages = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                body, ctype = pages.get(path)
                if not body:
                    self.send_error(404)
                    return
                start, end, status = 0, len(body) - 1, 200
                rng = re.match(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
                if rng and ctype.startswith("video"):
                    start = int(rng.group(1) or 0)
                    end = min(int(rng.group(2) or end), end)
                    status = 206
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(end - start + 1))
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{len(body)}")
                self.end_headers()
                self.wfile.write(body[start : end + 1])

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.origin = f"http://news1.test:{self.port}"
        self.endpoint = ""
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def get(self, path: str) -> tuple[bytes, str]:
        if path in self.files:
            return self.files[path]
        name = {"/spa/": "spa.html", "/spa/one": "spa.html", "/spa/two": "spa.html"}.get(
            path, path.lstrip("/")
        )
        page = HERE / "pages" / name
        if not re.fullmatch(r"[a-z0-9-]+\.html", name) or not page.exists():
            return b"", ""
        snippet = self.snippet.replace(DOC_TAG_SRC, "/pressmeter.min.js").replace(
            DOC_ENDPOINT, self.endpoint
        )
        if self.attrs:
            snippet = snippet.replace("></script>", f" {self.attrs}></script>", 1)
        return page.read_text().replace("<!--PM_SNIPPET-->", snippet).encode(), "text/html"

    def url(self, path: str) -> str:
        return self.origin + path
