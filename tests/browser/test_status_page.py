"""The status page in a real headless browser: Debian's chromium driven by Playwright.

A real redis-server, the simulator and the service (with an API key) run in the test;
the page is opened as a person would, the key typed in, and the test waits (Playwright's
``expect`` polls with a deadline; no sleeps) for the state, exact prices, prices that
change, the sparkline, the subscriptions and a gap notice. It writes a screenshot and
prints its path.

Not part of ``make test`` (a fresh machine has no chromium): ``make test-browser`` runs it
(pytest ``-m browser``); ``.ci/run`` installs chromium first when it is missing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.async_api import ConsoleMessage, async_playwright, expect

from apps.simulator import AlpacaSimulator
from tests.fixtures.service import ServiceFactory
from tests.helpers import eventually, quote

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
API_KEY = "browser-test-key-0123456789abcdef"
_WAIT_MS = 20_000  # a deadline for each expectation, not a pause

expect.set_options(timeout=_WAIT_MS)


def _installed(path: str) -> bool:
    return Path(path).is_file()


@pytest.mark.timeout(120)
async def test_the_status_page_shows_the_state_and_live_prices(
    start_service: ServiceFactory, simulator: AlpacaSimulator, tmp_path: Path
) -> None:
    assert _installed(CHROMIUM), (
        f"no browser at {CHROMIUM}: apt-get install chromium (or set CHROMIUM)"
    )
    service = await start_service(market_data_api_key=API_KEY)
    await service.wait_connected()
    service.http.headers["X-API-Key"] = API_KEY
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL", "MSFT"]})
    assert reply.status_code == 201, reply.text
    await eventually(lambda: {"AAPL", "MSFT"} <= simulator.subscribed_quotes, what="subscribed")
    await simulator.send_quotes([quote("AAPL", "123.40", "123.45")])

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 960})
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))

            def on_console(message: ConsoleMessage) -> None:
                # Chrome logs each 401 as an error: the page's calls before the key is entered.
                if message.type == "error" and "401 (Unauthorized)" not in message.text:
                    problems.append(f"console: {message.text}")

            page.on("console", on_console)
            await page.goto(service.url + "/")

            # Without the key: the state (public /health) shows, the page asks for the key.
            await expect(page.locator("#health-status")).to_have_text("healthy")
            await expect(page.locator("#feed-state")).to_contain_text("connected")
            await expect(page.locator("#key-status")).to_contain_text("needs an API key")
            await expect(page.locator("#stream-state")).to_contain_text("waiting for the API key")

            await page.fill("#api-key", API_KEY)
            await page.click("#key-save")
            await expect(page.locator("#key-status")).to_contain_text("Key accepted")
            await expect(page.locator("#stream-state")).to_contain_text("open")
            assert await page.evaluate("sessionStorage.getItem('market-data.api-key')") == API_KEY

            # The cached price arrives as the stream's snapshot, with the wire's exact digits.
            aapl = page.locator('#quotes-body tr[data-symbol="AAPL"]')
            await expect(aapl.locator("td.bid")).to_have_text("123.40")
            await expect(aapl.locator("td.ask")).to_have_text("123.45")
            await expect(aapl.locator("td.mid")).to_have_text("123.425")
            await expect(aapl.locator("td.spread")).to_have_text("0.05")

            # Quotes flow: the prices change on the page, and the rate shows.
            simulator.set_rate(20)
            await expect(aapl.locator("td.bid")).not_to_have_text("123.40")
            msft = page.locator('#quotes-body tr[data-symbol="MSFT"] td.bid')
            await expect(msft).to_have_text(re.compile(r"^\d+\.\d+$"))
            before = await msft.text_content()
            await expect(msft).not_to_have_text(before or "")
            await expect(page.locator("#spark-line")).to_have_attribute(
                "points", re.compile(r"\d+(\.\d+)?,\d+(\.\d+)? \d")
            )
            subscriptions = page.locator("#subs-body")
            await expect(subscriptions).to_contain_text("AAPL")
            await expect(subscriptions).to_contain_text(re.compile(r"MSFT\s*\d+\.\ds ago\s*manual"))

            # A gap: the broker connection drops; the service announces it, the page shows it.
            await simulator.drop_connections()
            await expect(page.locator("#events li.gap").first).to_contain_text("resync")

            screenshot = tmp_path / "status-page.png"
            await page.screenshot(path=str(screenshot), full_page=True)
            print(f"status page screenshot: {screenshot}")
            assert problems == []
        finally:
            await browser.close()
