"""``/docs`` (Swagger UI) and ``/redoc`` served with no CDN: they work offline.

The pages' scripts, style sheet and icon come from the pinned ``fastapi-offline``
package and are served by the app itself under :data:`STATIC_URL`; Swagger UI's online
validator badge is turned off. Like ``/openapi.json``, these are plain Starlette routes:
the API key dependency does not apply to them (``security.py`` says why).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_DIR", "DOCS_URL", "REDOC_URL", "STATIC_URL", "add_offline_docs"]

DOCS_URL: Final = "/docs"
REDOC_URL: Final = "/redoc"
STATIC_URL: Final = "/static-offline-docs"
# swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png
ASSETS_DIR: Final = Path(fastapi_offline.__file__).parent / "static"


def add_offline_docs(app: FastAPI) -> None:
    """Serve the assets and the two pages; build ``app`` with ``docs_url=None`` and
    ``redoc_url=None`` so FastAPI's CDN pages are not there too."""
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    def assets(request: Request) -> tuple[str, str]:
        root = str(request.scope.get("root_path", ""))
        return f"{root}{STATIC_URL}", f"{root}{app.openapi_url}"

    async def swagger_ui(request: Request) -> HTMLResponse:
        static, openapi_url = assets(request)
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon.png",
            # No badge from validator.swagger.io: nothing leaves the machine.
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )

    async def redoc(request: Request) -> HTMLResponse:
        static, openapi_url = assets(request)
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{static}/redoc.standalone.js",
            redoc_favicon_url=f"{static}/favicon.png",
            with_google_fonts=False,
        )

    app.add_route(DOCS_URL, swagger_ui, include_in_schema=False)
    app.add_route(REDOC_URL, redoc, include_in_schema=False)
