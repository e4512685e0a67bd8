"""GET /live and its assets: the page is the app's own files, it names nothing outside the
server, and its policy lets it reach only this origin (the browser test is tests/api/test_live_page.py)."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.api.routes.live import PAGE_DIR


def _directives(policy: str) -> dict[str, list[str]]:
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def test_the_page_and_every_asset_it_names_are_served_by_the_app(app_client: TestClient) -> None:
    page = app_client.get("/live")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    names = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", page.text)
    assert "/live-assets/live.js" in names and "/live-assets/live.css" in names
    assert not [n for n in names if "//" in n], f"the page names assets outside the server: {names}"
    inline = [n for n in names if not n.startswith("/live-assets/")]
    assert inline == ["data:,"], inline  # the empty favicon: no request for one
    script = app_client.get("/live-assets/live.js").text
    worklets = re.findall(r"""addModule\(["']([^"']+)""", script)
    assert worklets == ["/live-assets/pcm-worklet.js"]
    for asset in [*(set(names) - set(inline)), *worklets]:
        response = app_client.get(asset)
        assert response.status_code == 200, asset
        assert response.content == (PAGE_DIR / "assets" / asset.rsplit("/", 1)[1]).read_bytes()
    assert "Research use only" in page.text


def test_the_page_may_reach_only_its_own_origin(app_client: TestClient) -> None:
    policy = _directives(
        app_client.get("/live", headers={"host": "phq.example:8443"}).headers["content-security-policy"]
    )
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert policy["connect-src"] == ["'self'", "ws://phq.example:8443", "wss://phq.example:8443"]
    assert policy["frame-ancestors"] == ["'none'"]


def test_the_page_itself_is_not_among_the_assets(app_client: TestClient) -> None:
    # served only at /live, with its policy headers
    assert app_client.get("/live-assets/index.html").status_code == 404
    assert app_client.get("/live-assets/../index.html").status_code == 404
