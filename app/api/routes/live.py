"""GET /live: the browser page for live sessions (app/live: the HTML; app/live/assets: script, style, audio worklet).

Static files from the app itself, no CDN. The page reaches nothing but this server: its
Content-Security-Policy allows scripts, styles and connections to this origin only (the
WebSocket to /stream on the same host). It is a client of /stream like any other, so it
needs no route of its own beyond these files; the key, if the service asks for one, goes in
the session's config message.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

PAGE_DIR = Path(__file__).resolve().parents[2] / "live"
ASSETS_PATH = "/live-assets"

router = APIRouter()


def assets() -> StaticFiles:
    """The page's script, style and worklet, mounted at ASSETS_PATH."""
    return StaticFiles(directory=PAGE_DIR / "assets")


def _policy(request: Request) -> str:
    host = request.headers.get("host") or request.url.netloc
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' blob: data:",
            "media-src 'self' blob: mediastream:",
            # 'self' covers ws: in current browsers; the explicit forms cover older ones
            f"connect-src 'self' ws://{host} wss://{host}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        )
    )


@router.get("/live", include_in_schema=False)
async def live_page(request: Request) -> FileResponse:
    headers = {
        "Content-Security-Policy": _policy(request),
        # camera and microphone for this origin only; the page sends nothing elsewhere
        "Permissions-Policy": "camera=(self), microphone=(self)",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }
    return FileResponse(PAGE_DIR / "index.html", media_type="text/html", headers=headers)
