"""Drive headless Chromium over the DevTools pipe: open a local file, collect console errors,
read the DOM, take a screenshot. The pipe (not a debugging port) keeps everything off the network.

Chromium reads NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars"]


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageResult:
    errors: list[str] = field(default_factory=list)   # console errors, exceptions, CSP violations
    values: dict[str, Any] = field(default_factory=dict)
    screenshot: bytes | None = None
    requests: list[str] = field(default_factory=list)  # every URL the page asked for


class _Pipe:
    def __init__(self, proc: subprocess.Popen[bytes], to_browser: int, from_browser: int) -> None:
        self.proc, self.wfd, self.rfd = proc, to_browser, from_browser
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 60) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for i, ev in enumerate(self.events):
            if ev.get("method") == method:
                return self.events.pop(i)
        while True:
            ev = self._read(deadline)
            if ev.get("method") == method:
                return ev
            self.events.append(ev)

    def _read(self, deadline: float) -> dict[str, Any]:
        import select

        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer")
            ready, _, _ = select.select([self.rfd], [], [], left)
            if ready:
                chunk = os.read(self.rfd, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buf += chunk
        raw, _, self.buf = self.buf.partition(b"\0")
        return dict(json.loads(raw))


def _errors_from(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for ev in events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            errors.append("exception: " + str(details.get("exception", {}).get("description")
                                              or details.get("text")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append("console: " + " ".join(str(a.get("value", a.get("description")))
                                                for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            errors.append(f"log ({entry.get('source')}): {entry.get('text')}")
    return errors


def open_page(path: Path, expressions: dict[str, str], screenshot_size: tuple[int, int] | None = None,
              settle_expression: str = "true", timeout: float = 90,
              full_page: bool = False) -> PageResult:
    """Load ``path`` (a local file) and evaluate ``expressions`` once ``settle_expression`` is truthy."""
    binary = chromium_binary()
    assert binary, "chromium is not installed"
    profile = tempfile.mkdtemp(prefix="proxytrace-chromium-")
    to_r, to_w = os.pipe()      # commands: we write to_w, chromium reads fd 3
    from_r, from_w = os.pipe()  # replies: chromium writes fd 4, we read from_r

    def child_fds() -> None:
        # Copy first: a pipe end may already sit on fd 3 or 4, and dup2 onto itself would keep
        # its close-on-exec flag.
        cmd, reply = os.dup(to_r), os.dup(from_w)
        os.dup2(cmd, 3)
        os.dup2(reply, 4)

    width, height = screenshot_size or (1280, 900)
    proc = subprocess.Popen(  # noqa: S603 - fixed argument list, no shell
        [binary, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
         f"--window-size={width},{height}", "about:blank"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=child_fds, close_fds=False)
    os.close(to_r)
    os.close(from_w)
    pipe = _Pipe(proc, to_w, from_r)
    result = PageResult()
    try:
        target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)
        session = pipe.send("Target.attachToTarget", {"targetId": target["targetId"],
                                                      "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            pipe.send(f"{domain}.enable", session=session)
        pipe.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
        pipe.wait_for("Page.loadEventFired", timeout=timeout)
        deadline = time.monotonic() + timeout
        while not _evaluate(pipe, session, settle_expression):
            if time.monotonic() > deadline:
                raise TimeoutError(f"page never satisfied {settle_expression}")
            time.sleep(0.1)
        for name, expr in expressions.items():
            result.values[name] = _evaluate(pipe, session, expr)
        if screenshot_size:
            shot = pipe.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": full_page},
                             session=session, timeout=timeout)
            result.screenshot = base64.b64decode(shot["data"])
        result.errors = _errors_from(pipe.events)
        result.requests = [ev["params"]["request"]["url"] for ev in pipe.events
                           if ev.get("method") == "Network.requestWillBeSent"]
    finally:
        try:
            pipe.send("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_w)
        os.close(from_r)
        shutil.rmtree(profile, ignore_errors=True)
    return result


def _evaluate(pipe: _Pipe, session: str, expression: str) -> Any:
    reply = pipe.send("Runtime.evaluate", {"expression": expression, "returnByValue": True},
                      session=session)
    if "exceptionDetails" in reply:
        raise RuntimeError(f"{expression}: {reply['exceptionDetails'].get('text')}")
    return reply.get("result", {}).get("value")
