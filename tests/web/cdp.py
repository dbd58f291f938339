"""A minimal Chrome DevTools Protocol client over --remote-debugging-pipe: starts
Debian's /usr/bin/chromium headless (no browser download, no websocket library)
and drives one page: navigate, evaluate, wheel, keys."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from typing import Any

CHROMIUM = os.environ.get("PM_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,800",
    # test pages are served as http://news1.test:<port> (a name: ingest replaces
    # addresses in URLs with [ip])
    "--host-resolver-rules=MAP news1.test 127.0.0.1",
]


class CDPError(RuntimeError):
    pass


class Browser:
    """One headless Chromium with one page (flat session over the pipe)."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="pm-chromium-")
        # the child reads commands on fd 3 and writes answers on fd 4
        cmd_r, self._cmd_w = os.pipe()
        self._out_r, out_w = os.pipe()
        # above the numbers the child's fds 3 and 4 will take
        hi_r, hi_w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in (cmd_r, out_w))

        def child_fds() -> None:
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.log = open(os.path.join(self.profile, "chromium.log"), "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            pass_fds=(3, 4),
            preexec_fn=child_fds,
            start_new_session=True,
        )
        for fd in (cmd_r, out_w, hi_r, hi_w):
            os.close(fd)
        self._buf = b""
        self._next = 0
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        self.call("Page.enable")
        self.call("Runtime.enable")

    # --- protocol -------------------------------------------------------------
    def _read(self, timeout: float) -> dict[str, Any] | None:
        while b"\0" not in self._buf:
            # poll, not select: a long test session may hold file descriptors past 1024.
            poller = select.poll()
            poller.register(self._out_r, select.POLLIN)
            if not poller.poll(timeout * 1000):
                return None
            chunk = os.read(self._out_r, 1 << 20)
            if not chunk:
                raise CDPError("chromium closed the pipe:\n" + self.chromium_log())
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, timeout: float = 30, **params: Any) -> dict[str, Any]:
        self._next += 1
        msg: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self.session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            got = self._read(max(left, 0))
            if got is None:
                raise CDPError(f"{method}: no answer in {timeout} s")
            if got.get("id") == self._next:
                if "error" in got:
                    raise CDPError(f"{method}: {got['error']}")
                return got.get("result", {})
            if "method" in got:
                self.events.append(got)

    def wait_event(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["method"] == method:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError(f"no {method} in {timeout} s")
            got = self._read(left)
            if got is not None and "method" in got:
                self.events.append(got)

    # --- page -----------------------------------------------------------------
    def goto(self, url: str) -> None:
        self.events = [e for e in self.events if e["method"] != "Page.loadEventFired"]
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def eval(self, expression: str, await_promise: bool = False) -> Any:
        got = self.call(
            "Runtime.evaluate",
            expression=expression,
            returnByValue=True,
            awaitPromise=await_promise,
            userGesture=True,
        )
        if "exceptionDetails" in got:
            raise CDPError(f"{expression}: {got['exceptionDetails']}")
        return got["result"].get("value")

    def wheel(self, dy: int = 300) -> None:
        self.call("Input.dispatchMouseEvent", type="mouseWheel", x=400, y=300, deltaX=0, deltaY=dy)

    def key(self, char: str = "j") -> None:
        self.call("Input.dispatchKeyEvent", type="keyDown", key=char, text=char)
        self.call("Input.dispatchKeyEvent", type="keyUp", key=char)

    def chromium_log(self) -> str:
        path = os.path.join(self.profile, "chromium.log")
        with open(path, "rb") as f:
            return f.read()[-3000:].decode(errors="replace")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.call("Browser.close", timeout=5)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=10)
        self.log.close()
        for fd in (self._cmd_w, self._out_r):
            os.close(fd)
        shutil.rmtree(self.profile, ignore_errors=True)
