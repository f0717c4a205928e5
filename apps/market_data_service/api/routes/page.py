"""``/``: the status page, and its script, style sheet and icon under :data:`ASSETS_URL`.

Static files from ``apps/market_data_service/web/`` (no build step; shipped in the wheel
with the package). Like ``/docs``, these are plain Starlette routes: the page holds no
data and no secret, so it loads without the API key; its script sends the key the user
enters (kept in the tab's ``sessionStorage``) to the API itself. Every answer carries a
Content-Security-Policy that allows this origin only: no inline script, nothing from
elsewhere. The files are read once, at the first request.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import Response

__all__ = ["ASSETS", "ASSETS_URL", "CONTENT_SECURITY_POLICY", "PAGE_URL", "WEB_DIR", "add_page"]

PAGE_URL: Final = "/"
ASSETS_URL: Final = "/ui"
WEB_DIR: Final = Path(__file__).resolve().parent.parent.parent / "web"
# File name -> media type: only these are served (no directory listing, no traversal).
ASSETS: Final = {
    "app.js": "text/javascript; charset=utf-8",
    "shared.js": "text/javascript; charset=utf-8",
    "stream.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
# 'self' covers ws:// and wss:// on the same host and port (CSP level 3).
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@functools.cache
def _read(name: str) -> bytes:
    return (WEB_DIR / name).read_bytes()


async def _page(request: Request) -> Response:
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=_HEADERS)


def _asset(name: str, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return Response(_read(name), media_type=media_type, headers=_HEADERS)

    return serve


def add_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files; outside the OpenAPI document."""
    app.add_route(PAGE_URL, _page, methods=["GET", "HEAD"], include_in_schema=False)
    for name, media_type in ASSETS.items():
        app.add_route(
            f"{ASSETS_URL}/{name}",
            _asset(name, media_type),
            methods=["GET", "HEAD"],
            include_in_schema=False,
        )
