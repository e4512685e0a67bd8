"""/docs in a real browser with no network but loopback: Swagger UI must render every
operation from the service's own assets (no CDN).

Headless Chromium (Debian's ``chromium``; ``make system-deps`` installs it) loads the page
with every host name resolving to nothing and a dead proxy for anything not on loopback,
dumps the DOM after the scripts ran, and writes a net log: the rendered operations are
compared with /openapi.json, and the page's own requests must all have stayed on the server.
"""

from __future__ import annotations

import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from tests.api.browser import browser_env, find_browser, offline_flags

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Swagger UI renders once the bundle has run and /openapi.json is in: virtual time lets
# --dump-dom wait for that instead of dumping the empty page
VIRTUAL_TIME_MS = 10000
TIMEOUT_S = 120


def _chromium(browser: str, url: str, profile: Path, net_log: Path) -> subprocess.CompletedProcess[str]:
    """Load ``url`` headless with only loopback reachable; stdout is the DOM after rendering."""
    args = [
        browser,
        *offline_flags(profile),
        f"--log-net-log={net_log}",
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        "--dump-dom",
        url,
    ]
    return subprocess.run(
        args, capture_output=True, text=True, timeout=TIMEOUT_S, env=browser_env(profile), check=False
    )


class _Operations(HTMLParser):
    """(METHOD, path) of every rendered Swagger UI operation, and the page's h1/h2 title text."""

    def __init__(self) -> None:
        super().__init__()
        self.operations: set[tuple[str, str]] = set()
        self.titles: list[str] = []
        self._method: str | None = None
        self._in_method = False
        self._in_title = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if "opblock-summary-method" in classes:
            self._in_method = True
        elif "opblock-summary-path" in classes and self._method and attributes.get("data-path"):
            self.operations.add((self._method, attributes["data-path"] or ""))
        if "title" in classes and tag in ("h1", "h2"):
            self._in_title += 1
            self.titles.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("h1", "h2") and self._in_title:
            self._in_title -= 1

    def handle_data(self, data: str) -> None:
        if self._in_method:
            self._method = data.strip().upper()
            self._in_method = False
        if self._in_title:
            self.titles[-1] += data


def _page_requests(net_log: Path, origin: str) -> list[str]:
    """URLs the page itself requested: the navigation to ``origin`` and everything it initiated
    (the browser's own background traffic has another initiator)."""
    text = net_log.read_text()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short at exit lacks its closing brackets
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    names = {number: name for name, number in log["constants"]["logEventTypes"].items()}
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if names.get(event["type"]) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        if params.get("initiator") == origin or params["url"].startswith(origin + "/"):
            urls.append(params["url"])
    return urls


def test_docs_render_every_operation_offline(server: str, client: httpx.Client, tmp_path: Path) -> None:
    browser = find_browser()
    html = client.get("/docs").text
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html)
    assert assets and not [a for a in assets if "//" in a], f"the page names assets outside the server: {assets}"

    net_log = tmp_path / "net-log.json"
    run = _chromium(browser, server + "/docs", tmp_path / "profile", net_log)
    assert run.returncode == 0, run.stderr[-3000:]
    dom = _Operations()
    dom.feed(run.stdout)

    schema = client.get("/openapi.json").json()
    expected = {
        (method.upper(), path) for path, item in schema["paths"].items() for method in item if method in METHODS
    }
    assert {("POST", "/predict"), ("GET", "/healthz")} <= expected
    missing = expected - dom.operations
    assert not missing, f"operations not rendered: {sorted(missing)}; rendered: {sorted(dom.operations)}"
    assert any(schema["info"]["title"] in title for title in dom.titles), dom.titles

    origin = "{0.scheme}://{0.netloc}".format(urlsplit(server))
    requested = _page_requests(net_log, origin)
    assert origin + "/docs-assets/swagger-ui-bundle.js" in requested, requested
    assert origin + "/openapi.json" in requested, requested
    outside = [url for url in requested if not url.startswith(origin + "/")]
    assert not outside, f"the page fetched from outside the server: {outside}"


def test_the_browser_really_has_no_network(tmp_path: Path) -> None:
    """The control: with the same flags a CDN asset does not load, so the test above cannot pass
    because the CDN happened to be reachable."""
    browser = find_browser()
    url = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"
    run = _chromium(browser, url, tmp_path / "profile", tmp_path / "net-log.json")
    assert "SwaggerUIBundle" not in run.stdout
    assert "ERR_" in run.stderr, run.stderr[-2000:]
