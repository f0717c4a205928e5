"""The status page at ``/``: served without the key, every file it loads served locally,
a Content-Security-Policy of this origin only, outside the OpenAPI document.

What the page shows, in a real browser, is tests/browser/test_status_page.py.
"""

from __future__ import annotations

import re

from apps.market_data_service.api.routes.page import ASSETS, WEB_DIR
from tests.apps.market_data_service.api.test_docs import references
from tests.fixtures.service import ServiceFactory

API_KEY = "page-api-key-0a1b2c3d4e5f6789"


async def test_the_page_and_its_files_load_without_the_key(
    start_service: ServiceFactory,
) -> None:
    service = await start_service(market_data_api_key=API_KEY)
    page = await service.http.get("/")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "connect-src 'self'" in policy and "'unsafe-inline'" not in policy
    urls = references(page.text)
    assert {"/ui/app.js", "/ui/style.css", "/ui/favicon.svg"} <= set(urls)
    for url in urls:
        assert url.startswith("/"), url  # this origin only: no CDN
        reply = await service.http.get(url)
        assert reply.status_code == 200, url
        assert reply.content == (WEB_DIR / url.removeprefix("/ui/")).read_bytes()
    assert (
        (await service.http.get("/ui/app.js")).headers["content-type"].startswith("text/javascript")
    )
    for name in ASSETS:  # app.js imports the other scripts
        assert (await service.http.get(f"/ui/{name}")).status_code == 200, name
    assert (await service.http.head("/")).status_code == 200
    # The API behind it still needs the key.
    assert (await service.http.get("/api/v1/subscriptions")).status_code == 401


async def test_only_the_page_files_are_served_and_the_docs_stay(
    start_service: ServiceFactory,
) -> None:
    service = await start_service()
    for path in ("/ui/index.html", "/ui/../main.py", "/ui/", "/ui/missing.js"):
        assert (await service.http.get(path)).status_code == 404, path
    assert (await service.http.get("/docs")).status_code == 200
    schema = (await service.http.get("/openapi.json")).json()
    assert "/" not in schema["paths"] and not any(p.startswith("/ui") for p in schema["paths"])


def test_the_files_name_nothing_outside_this_origin() -> None:
    for name in ("index.html", *ASSETS):
        text = (WEB_DIR / name).read_text(encoding="utf-8")
        # xmlns names a namespace; nothing else may be an absolute URL (no CDN, no fonts).
        absolute = re.findall(r"(?:https?:)?//[\w.-]+\.\w+", text.replace(_SVG_NS, ""))
        assert absolute == [], (name, absolute)
        assert "innerHTML" not in text, name  # values go in as text
        assert "<style" not in text and " style=" not in text, name  # CSP: no inline style


_SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'
