"""Headless Chromium for the page tests: Debian's ``chromium`` (``make system-deps``), loopback only.

``offline_flags`` start it with every host name resolving to nothing but 127.0.0.1 and a dead
proxy for anything else, so a page that needed a CDN could not work. ``DevToolsPage`` drives
one tab over the DevTools protocol (a WebSocket; no browser-automation package needed):
evaluate script in the page, wait for a condition, read the requests it made.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

BROWSERS = ("chromium", "chromium-browser")
START_TIMEOUT_S = 60


def find_browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    pytest.skip("browser tests need Debian's chromium (apt-get install chromium; `make system-deps`)")


def offline_flags(profile: Path) -> list[str]:
    return [
        "--headless",
        "--no-sandbox",  # containers and CI runners as root have no user namespaces for the sandbox
        "--disable-gpu",
        "--disable-dev-shm-usage",  # small /dev/shm in containers
        "--no-first-run",
        "--disable-extensions",
        "--disable-sync",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={profile}",
        # no network: names resolve to nothing except loopback, and whatever still tries goes to a
        # dead proxy (loopback bypasses proxies by default), so a CDN asset could not load
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--proxy-server=127.0.0.1:9",
    ]


def browser_env(profile: Path) -> dict[str, str]:
    # HOME: chromium writes caches and crash reports there; keep them in the test's folder
    return {"HOME": str(profile.parent), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}


class PageError(AssertionError):
    """A script that threw in the page, or a condition that did not come in time."""


class DevToolsPage:
    """One tab of a running Chromium, over its DevTools WebSocket."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self._next_id = 0
        self.requests: list[str] = []  # every URL the page requested, in order (Network domain)
        self.console: list[str] = []  # the page's console messages and uncaught exceptions

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        message_id = self._next_id
        self._connection.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self._connection.recv(timeout=30))
            if reply.get("id") == message_id:
                if "error" in reply:
                    raise PageError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _event(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled":
            self.console.append(" ".join(str(arg.get("value", arg.get("description", ""))) for arg in params["args"]))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.console.append("uncaught: " + str(details.get("exception", {}).get("description", details["text"])))

    def evaluate(self, expression: str) -> Any:
        """The value of ``expression`` in the page (promises awaited), as if a user gesture ran it."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True, userGesture=True
        )
        if "exceptionDetails" in result:
            raise PageError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout_s: float, every_s: float = 0.5) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise PageError(f"{expression!r} still {value!r} after {timeout_s:g} s; console: {self.console[-10:]}")
            time.sleep(every_s)


@contextmanager
def open_page(browser: str, url: str, profile: Path, extra_flags: Sequence[str] = ()) -> Iterator[DevToolsPage]:
    """Start Chromium on ``url`` (offline but for loopback) with a DevTools port; its first tab."""
    profile.mkdir(parents=True, exist_ok=True)
    args = [browser, *offline_flags(profile), "--remote-debugging-port=0", *extra_flags, "about:blank"]
    log_path = profile.parent / "chromium.log"
    with log_path.open("wb") as log:  # a file, not a pipe: chromium's chatter must never block it
        process = subprocess.Popen(args, env=browser_env(profile), stdout=log, stderr=subprocess.STDOUT)
    try:
        port = _devtools_port(profile, process, log_path)
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        tab = next(t for t in targets if t["type"] == "page")
        with connect(tab["webSocketDebuggerUrl"], max_size=None, proxy=None) as connection:
            page = DevToolsPage(connection)
            page.call("Network.enable")
            page.call("Runtime.enable")
            page.call("Page.enable")
            page.call("Page.navigate", url=url)
            page.wait_for("document.readyState === 'complete'", 30)
            yield page
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _devtools_port(profile: Path, process: subprocess.Popen, log_path: Path) -> int:
    """Chromium writes the port it chose to DevToolsActivePort in its profile."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_path.read_text(errors="replace")
            raise RuntimeError(f"chromium exited ({process.returncode}): {log[-3000:]}")
        if marker.exists() and (text := marker.read_text().split()):
            return int(text[0])
        time.sleep(0.2)
    raise RuntimeError("chromium did not open its DevTools port in time")
