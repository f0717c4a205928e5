"""The simulator's REST endpoints as a plain HTTP client sees them: Alpaca's shapes
(positions with string numbers, snapshots keyed by symbol with JSON numbers), the
auth headers, the failure hooks; the WebSocket on the same port keeps working."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import msgspec
import pytest

from apps.simulator import AlpacaSimulator
from apps.simulator.quotes import format_price, start_price_cents
from tests.fixtures.simulator import SimulatorFactory, recv_frame, sim_client
from tests.helpers import quote

AUTH = {"APCA-API-KEY-ID": "sim-key", "APCA-API-SECRET-KEY": "sim-secret"}
EXACT = msgspec.json.Decoder(float_hook=Decimal)


async def get(
    sim: AlpacaSimulator, path: str, headers: dict[str, str] | None = None
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sim.http_url(), timeout=5) as http:
        return await http.get(path, headers=AUTH if headers is None else headers)


def start_price(symbol: str) -> Decimal:
    return Decimal(format_price(start_price_cents(symbol)))


async def test_positions_are_alpaca_shaped_with_string_numbers(simulator: AlpacaSimulator) -> None:
    simulator.set_positions(
        [
            {"symbol": "msft", "qty": "5", "side": "short", "avg_entry_price": "300.10"},
            {"symbol": "AAPL", "qty": 10, "avg_entry_price": "187.50"},
        ]
    )
    await simulator.send_quotes([quote("AAPL", "190.00", "190.02")])
    reply = await get(simulator, "/v2/positions")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/json")
    assert reply.headers["x-ratelimit-limit"] == "200"
    assert int(reply.headers["x-ratelimit-remaining"]) < 200
    body = reply.json()
    assert [p["symbol"] for p in body] == ["AAPL", "MSFT"]
    aapl, msft = body
    numeric = ("qty", "avg_entry_price", "market_value", "cost_basis", "unrealized_pl",
               "current_price", "lastday_price", "unrealized_plpc", "change_today")  # fmt: skip
    for position in body:
        for name in numeric:
            assert isinstance(position[name], str), name
        assert position["asset_class"] == "us_equity"
        assert position["usd"]["market_value"] == position["market_value"]
    assert (aapl["qty"], aapl["side"], aapl["avg_entry_price"]) == ("10", "long", "187.50")
    assert aapl["current_price"] == "190.01"
    assert aapl["market_value"] == "1900.10"
    assert aapl["cost_basis"] == "1875.00"
    assert aapl["unrealized_pl"] == "25.10"
    # A short: negative qty, side "short", negative market value and cost basis.
    assert (msft["qty"], msft["side"], msft["cost_basis"]) == ("-5", "short", "-1500.50")
    assert msft["current_price"] == str(start_price("MSFT"))
    assert Decimal(msft["unrealized_pl"]) == (Decimal("300.10") - start_price("MSFT")) * 5


async def test_snapshots_are_a_map_by_symbol_with_exact_numbers(
    simulator: AlpacaSimulator,
) -> None:
    simulator.rest.set_previous_close("AAPL", "187.123456789")
    await simulator.send_quotes([quote("AAPL", "190.00", "190.02")])
    reply = await get(simulator, "/v2/stocks/snapshots?symbols=AAPL,msft&feed=iex")
    assert reply.status_code == 200
    assert b'"c":187.123456789' in reply.content  # a JSON number, not a string
    body = EXACT.decode(reply.content)
    assert set(body) == {"AAPL", "MSFT"}
    assert body["AAPL"]["prevDailyBar"]["c"] == Decimal("187.123456789")
    assert body["AAPL"]["latestQuote"]["bp"] == Decimal("190.00")
    assert body["AAPL"]["dailyBar"]["c"] == Decimal("190.01")
    assert body["MSFT"]["prevDailyBar"]["c"] == start_price("MSFT")
    assert "latestQuote" not in body["MSFT"]  # never quoted
    assert body["MSFT"]["prevDailyBar"]["t"].endswith("T04:00:00Z")


@pytest.mark.parametrize(
    ("path", "status"), [("/v2/positions", 401), ("/v2/stocks/snapshots?symbols=AAPL", 403)]
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"APCA-API-KEY-ID": "sim-key"}, {**AUTH, "APCA-API-SECRET-KEY": "wrong"}],
)
async def test_credentials_are_checked(
    simulator: AlpacaSimulator, path: str, status: int, headers: dict[str, str]
) -> None:
    reply = await get(simulator, path, headers)
    assert reply.status_code == status
    assert set(reply.json()) == {"code", "message"}


async def test_snapshots_without_symbols_or_with_a_bad_one_are_400(
    simulator: AlpacaSimulator,
) -> None:
    missing = await get(simulator, "/v2/stocks/snapshots")
    assert missing.status_code == 400
    assert "symbols" in missing.json()["message"]
    bad = await get(simulator, "/v2/stocks/snapshots?symbols=AAPL,$$$")
    assert bad.status_code == 400
    assert "$$$" in bad.json()["message"]


async def test_failure_hooks_answer_then_recover(simulator: AlpacaSimulator) -> None:
    simulator.fail_positions(503, times=2, retry_after=1.5)
    simulator.fail_rest("snapshots", 429, ratelimit_reset=2_000_000_000.2)
    first = await get(simulator, "/v2/positions")
    assert first.status_code == 503
    assert first.headers["retry-after"] == "1.5"
    assert first.json() == {"code": 50310000, "message": "service unavailable"}
    assert (await get(simulator, "/v2/positions")).status_code == 503
    assert (await get(simulator, "/v2/positions")).status_code == 200
    limited = await get(simulator, "/v2/stocks/snapshots?symbols=AAPL")
    assert limited.status_code == 429
    assert limited.headers["x-ratelimit-reset"] == "2000000001"
    assert (await get(simulator, "/v2/stocks/snapshots?symbols=AAPL")).status_code == 200
    assert simulator.rest.count("/v2/positions") == 3
    with pytest.raises(ValueError, match="HTTP error status"):
        simulator.fail_positions(200)


async def test_an_unknown_path_is_still_404_and_the_websocket_still_works(
    simulator: AlpacaSimulator,
) -> None:
    assert (await get(simulator, "/v2/stocks/bars")).status_code == 404
    async with sim_client(simulator) as ws:
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["AAPL"]}))
        ack = await recv_frame(ws)
        assert ack[0]["quotes"] == ["AAPL"]
    assert simulator.total_connections == 1  # REST requests are not sessions


async def test_positions_from_the_config(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory(
        positions=({"symbol": "TSLA", "qty": "-2", "avg_entry_price": "250"},)
    )
    body = (await get(sim, "/v2/positions")).json()
    assert [(p["symbol"], p["qty"], p["side"]) for p in body] == [("TSLA", "-2", "short")]
    sim.set_positions([])
    assert (await get(sim, "/v2/positions")).json() == []


async def test_clear_failures_forgets_what_the_facade_queued(simulator: AlpacaSimulator) -> None:
    simulator.fail_positions(503, times=5)
    simulator.fail_rest("snapshots", 500)
    simulator.rest.clear_failures()
    assert (await get(simulator, "/v2/positions")).status_code == 200
    assert (await get(simulator, "/v2/stocks/snapshots?symbols=AAPL")).status_code == 200
    assert simulator.rest.requests == [("/v2/positions", 200), ("/v2/stocks/snapshots", 200)]
