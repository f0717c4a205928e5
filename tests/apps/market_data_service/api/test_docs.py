"""``/docs`` and ``/redoc`` work offline: every script, style sheet and icon the pages
reference is a local URL the service itself serves, with or without an API key.

The service runs on the shared harness (uvicorn in the test's loop, the simulator, a
real redis-server); the pages are read as a browser would, then every asset they name
is fetched from the service.
"""

from __future__ import annotations

import posixpath
import urllib.parse
from html.parser import HTMLParser

import httpx
import pytest

from tests.fixtures.service import Service, ServiceFactory

API_KEY = "docs-api-key-5e1f0a9b7c3d2468"
# What the two pages need: Swagger UI's script and style sheet, ReDoc's script, the icon.
ASSETS = {"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"}
CONTENT_TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


class _References(HTMLParser):
    """Every URL a page makes the browser load: script src, link href, img src, and
    ReDoc's spec-url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"script": "src", "link": "href", "img": "src", "redoc": "spec-url"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.urls.append(value)


def references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


async def check_docs_offline(http: httpx.AsyncClient) -> set[str]:
    """Load both pages and every asset they reference; the assets' file names."""
    served: set[str] = set()
    for page in ("/docs", "/redoc"):
        reply = await http.get(page)
        assert reply.status_code == 200, (page, reply.text)
        assert reply.headers["content-type"].startswith("text/html")
        # No CDN, no web fonts, no online validator: nothing absolute at all.
        assert "http://" not in reply.text, page
        assert "https://" not in reply.text, page
        urls = references(reply.text)
        assert urls, page
        for url in urls:
            parts = urllib.parse.urlsplit(url)
            assert not parts.scheme and not parts.netloc, (page, url)
            assert url.startswith("/"), (page, url)
            asset = await http.get(url)
            assert asset.status_code == 200, (page, url)
            assert asset.content, (page, url)
            name = posixpath.basename(parts.path)
            if name == "openapi.json":
                assert asset.json()["openapi"].startswith("3.")
                continue
            expected = CONTENT_TYPES[posixpath.splitext(name)[1]]
            assert expected in asset.headers["content-type"], (url, asset.headers)
            served.add(name)
    return served


async def test_docs_and_redoc_load_every_asset_from_the_service(service: Service) -> None:
    assert await check_docs_offline(service.http) == ASSETS


async def test_docs_pages_and_assets_need_no_api_key(start_service: ServiceFactory) -> None:
    keyed = await start_service(market_data_api_key=API_KEY)
    await keyed.wait_connected()
    # A browser opening /docs sends no key: the pages, their assets and the document load.
    assert await check_docs_offline(keyed.http) == ASSETS
    assert (await keyed.http.get("/openapi.json")).status_code == 200
    # The API itself still needs it.
    assert (await keyed.http.get("/api/v1/subscriptions")).status_code == 401


@pytest.mark.parametrize("path", ["/static-offline-docs/nothing.js", "/static-offline-docs/"])
async def test_a_missing_asset_is_a_404(service: Service, path: str) -> None:
    reply = await service.http.get(path)
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "application/problem+json"
