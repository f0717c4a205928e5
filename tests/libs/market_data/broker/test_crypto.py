"""Crypto on the broker's REST side: positions named by their pair (``BTCUSD`` ->
``BTC/USD``), latest quotes from the crypto endpoint with exact fractional sizes, and
no crypto pair sent to a stocks endpoint. The simulator over a real socket answers a
symbol on the wrong endpoint with a 400."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.simulator import AlpacaSimulator
from apps.simulator.rest import CRYPTO_LATEST_QUOTES_PATH, LATEST_QUOTES_PATH, SNAPSHOTS_PATH
from libs.market_data import BrokerAPIError
from libs.market_data.broker import (
    AlpacaRestClient,
    LatestQuote,
    PositionSide,
    crypto_pair,
    decode_latest_quotes,
    decode_positions,
    position_symbol,
)
from tests.helpers import quote
from tests.libs.market_data.broker.sim_client import client_for

WHAT = "GET /v1beta3/crypto/us/latest/quotes"


@pytest.mark.parametrize(
    ("reported", "pair"),
    [
        ("BTCUSD", "BTC/USD"),
        ("ETHUSDT", "ETH/USDT"),  # the longest quote currency wins: not ETHU/SDT
        ("SOLUSDC", "SOL/USDC"),
        ("ETHBTC", "ETH/BTC"),
        ("USDTUSD", "USDT/USD"),
        ("btc/usd", "BTC/USD"),  # already a pair
        ("USD", None),  # a quote currency alone has no base asset
        ("XYZABC", None),
    ],
)
def test_a_crypto_symbol_is_read_as_its_pair(reported: str, pair: str | None) -> None:
    assert crypto_pair(reported) == pair


def test_only_a_crypto_position_is_renamed(caplog: pytest.LogCaptureFixture) -> None:
    assert position_symbol("BTCUSD", "crypto") == "BTC/USD"
    assert position_symbol("BTCUSD", "us_equity") == "BTCUSD"  # a ticker is a ticker
    assert position_symbol("XYZABC", "crypto") == "XYZABC"
    assert "XYZABC: no known quote currency" in caplog.text
    body = (
        b'[{"symbol":"BTCUSD","qty":"0.000123456789","side":"long","avg_entry_price":"60000.5",'
        b'"asset_class":"crypto","exchange":"CRYPTO"}]'
    )
    (position,) = decode_positions(body)
    assert (position.symbol, position.qty, position.asset_class) == (
        "BTC/USD", Decimal("0.000123456789"), "crypto")  # fmt: skip


def test_crypto_latest_quotes_keep_fractional_sizes_exact(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = (
        b'{"quotes":{"BTC/USD":{"t":"2026-01-02T15:00:00.123456789Z","bp":71859.53,'
        b'"bs":0.00012345,"ap":71939.7,"as":1.5},'
        b'"ETH/USD":{"t":"2026-01-02T15:00:00Z","bp":1,"bs":"NaN","ap":2,"as":1}}}'
    )
    quotes = decode_latest_quotes(body, WHAT, fractional=True)
    assert quotes == {
        "BTC/USD": LatestQuote(
            symbol="BTC/USD",
            bid_price=Decimal("71859.53"),
            ask_price=Decimal("71939.7"),
            bid_size=Decimal("0.00012345"),
            ask_size=Decimal("1.5"),
            timestamp="2026-01-02T15:00:00.123456789Z",
        )
    }
    assert "ignoring the quote of ETH/USD" in caplog.text
    # The stocks' decoder still wants whole shares: BTC/USD's are not.
    assert list(decode_latest_quotes(body.replace(b'"NaN"', b"1"), WHAT)) == ["ETH/USD"]


async def test_pairs_are_read_from_the_crypto_endpoint_and_stocks_from_theirs(
    simulator: AlpacaSimulator,
) -> None:
    seen: list[str] = []
    handle = simulator.rest.handle

    def spy(request):  # type: ignore[no-untyped-def]
        seen.append(request.path)
        return handle(request)

    simulator.rest.handle = spy  # type: ignore[method-assign]
    await simulator.send_quotes([quote("AAPL", "190.10", "190.12")])
    simulator.rest.set_latest_quote(
        {"S": "BTC/USD", "bp": Decimal("71859.53"), "bs": Decimal("0.00012345"),
         "ap": Decimal("71939.7"), "as": Decimal("1.5"), "t": "2026-01-02T15:00:00Z"}
    )  # fmt: skip
    async with client_for(simulator, feed="iex") as client:
        quotes = await client.get_latest_quotes(["AAPL", "BTC/USD", "ETH/USD"])
    assert sorted(quotes) == ["AAPL", "BTC/USD"]
    btc = quotes["BTC/USD"]
    assert (str(btc.bid_size), str(btc.ask_size), btc.bid_exchange) == ("0.00012345", "1.5", None)
    assert quotes["AAPL"].bid_size == 1 and type(quotes["AAPL"].bid_size) is int
    assert simulator.rest.count(LATEST_QUOTES_PATH) == 1
    assert simulator.rest.count(CRYPTO_LATEST_QUOTES_PATH) == 1
    queries = {urlsplit(p).path: parse_qs(urlsplit(p).query) for p in seen}
    assert queries[LATEST_QUOTES_PATH] == {"symbols": ["AAPL"], "feed": ["iex"]}
    assert queries[CRYPTO_LATEST_QUOTES_PATH] == {"symbols": ["BTC/USD,ETH/USD"]}  # no feed


async def test_the_crypto_location_is_the_endpoint_s_path(simulator: AlpacaSimulator) -> None:
    async with client_for(simulator, crypto_location="us-1") as client:
        assert await client.get_latest_crypto_quotes(["BTC/USD", "AAPL"]) == {}
    assert simulator.rest.requests == [("/v1beta3/crypto/us-1/latest/quotes", 200)]


async def test_the_simulator_refuses_a_symbol_on_the_wrong_endpoint(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    with pytest.raises(BrokerAPIError, match="invalid symbol: BTC/USD") as caught:
        await broker._latest(["BTC/USD"], LATEST_QUOTES_PATH, fractional=False)
    assert caught.value.status == 400
    with pytest.raises(BrokerAPIError, match="invalid symbol: AAPL"):
        await broker._latest(["AAPL"], CRYPTO_LATEST_QUOTES_PATH, fractional=True)


async def test_previous_closes_never_ask_the_stocks_endpoint_for_a_pair(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    closes = await broker.get_previous_closes(["AAPL", "BTC/USD"])
    assert list(closes) == ["AAPL"]
    assert await broker.get_previous_closes(["BTC/USD"]) == {}
    assert simulator.rest.count(SNAPSHOTS_PATH) == 1


async def test_a_simulated_crypto_position_is_the_pair_valued_at_its_quotes(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    simulator.set_positions(
        [{"symbol": "BTCUSD", "qty": "0.5", "avg_entry_price": "60000", "asset_class": "crypto"}]
    )
    (held,) = simulator.rest.positions
    assert (held.symbol, held.pair, held.exchange) == ("BTCUSD", "BTC/USD", "CRYPTO")
    simulator.rest.set_latest_quote(
        {"S": "BTC/USD", "bp": Decimal("70000.10"), "bs": Decimal("0.1"),
         "ap": Decimal("70000.30"), "as": Decimal("0.2"), "t": "2026-01-02T15:00:00Z"}
    )  # fmt: skip
    (position,) = await broker.get_positions()
    assert (position.symbol, position.side, position.qty) == (
        "BTC/USD", PositionSide.LONG, Decimal("0.5"))  # fmt: skip
    assert position.current_price == Decimal("70000.20")
    assert position.unrealized_pl == Decimal("5000.100")
