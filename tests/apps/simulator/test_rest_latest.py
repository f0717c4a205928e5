"""The simulator's ``GET /v2/stocks/quotes/latest`` as a plain HTTP client sees it: Alpaca's
shape with exact JSON numbers, the data API's auth, the current quote (the newer of the
last one streamed and one made off the stream), and its fault switch."""

from __future__ import annotations

from decimal import Decimal

import httpx
import msgspec

from apps.simulator import AlpacaSimulator
from apps.simulator.rest import LATEST_QUOTES_PATH
from tests.helpers import quote

AUTH = {"APCA-API-KEY-ID": "sim-key", "APCA-API-SECRET-KEY": "sim-secret"}
EXACT = msgspec.json.Decoder(float_hook=Decimal)


async def latest(
    sim: AlpacaSimulator, query: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.http_url(), timeout=5) as http:
        return await http.get(
            f"{LATEST_QUOTES_PATH}?{query}", headers=AUTH if headers is None else headers
        )


async def test_latest_quotes_are_alpaca_shaped_with_the_streamed_quote(
    simulator: AlpacaSimulator,
) -> None:
    await simulator.send_quotes([quote("AAPL", "190.10", "190.125", t="2026-01-02T15:00:00.5Z")])
    reply = await latest(simulator, "symbols=AAPL,NEVER&feed=iex")
    assert reply.status_code == 200
    assert reply.headers["x-ratelimit-limit"] == "200"
    assert b'"bp":190.10' in reply.content  # the exact text, as a JSON number
    body = EXACT.decode(reply.content)
    # A symbol without a quote is left out, as Alpaca does.
    assert body == {
        "quotes": {
            "AAPL": {
                "t": "2026-01-02T15:00:00.5Z",
                "ax": "P",
                "ap": Decimal("190.125"),
                "as": 2,
                "bx": "Q",
                "bp": Decimal("190.10"),
                "bs": 1,
            }
        }
    }


async def test_a_quote_set_off_the_stream_is_current_until_a_newer_one_is_sent(
    simulator: AlpacaSimulator,
) -> None:
    await simulator.send_quotes([quote("TSLA", "250.00", "250.10", t="2026-01-02T15:00:00Z")])
    simulator.set_latest_quote("TSLA", "251.00", "251.05", timestamp="2026-01-02T15:00:01Z")
    body = EXACT.decode((await latest(simulator, "symbols=TSLA")).content)
    assert body["quotes"]["TSLA"]["bp"] == Decimal("251.00")
    assert simulator.quotes_sent == 1  # made while nobody listened: never streamed
    # An older off-stream quote does not hide a newer streamed one.
    simulator.set_latest_quote("TSLA", "1.00", "1.01", timestamp="2026-01-01T00:00:00Z")
    await simulator.send_quotes([quote("TSLA", "252.00", "252.10", t="2026-01-02T15:00:02Z")])
    body = EXACT.decode((await latest(simulator, "symbols=TSLA")).content)
    assert body["quotes"]["TSLA"]["bp"] == Decimal("252.00")
    # The snapshots agree with it.
    async with httpx.AsyncClient(base_url=simulator.http_url(), timeout=5) as http:
        snap = await http.get("/v2/stocks/snapshots?symbols=TSLA", headers=AUTH)
    assert EXACT.decode(snap.content)["TSLA"]["latestQuote"]["bp"] == Decimal("252.00")


async def test_bad_keys_get_403_and_bad_requests_400(simulator: AlpacaSimulator) -> None:
    reply = await latest(simulator, "symbols=AAPL", {"APCA-API-KEY-ID": "x"})
    assert reply.status_code == 403
    assert reply.json()["code"] == 40310000
    assert (await latest(simulator, "symbols=")).status_code == 400
    assert (await latest(simulator, "symbols=AA%20PL")).status_code == 400


async def test_the_fault_switch_fails_the_next_requests_then_serves_again(
    simulator: AlpacaSimulator,
) -> None:
    simulator.set_latest_quote("AAPL", "10.00", "10.01")
    simulator.fail_latest_quotes(503, times=2)
    simulator.fail_latest_quotes(429, retry_after=7)
    assert (await latest(simulator, "symbols=AAPL")).status_code == 503
    assert (await latest(simulator, "symbols=AAPL")).status_code == 503
    limited = await latest(simulator, "symbols=AAPL")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert (await latest(simulator, "symbols=AAPL")).status_code == 200
    assert simulator.rest.count(LATEST_QUOTES_PATH) == 4
    # The other endpoints' queues are their own.
    simulator.fail_latest_quotes(503)
    async with httpx.AsyncClient(base_url=simulator.http_url(), timeout=5) as http:
        assert (await http.get("/v2/positions", headers=AUTH)).status_code == 200
