"""``AlpacaRestClient.get_latest_quotes`` against the simulator, and the decoding of the
answer: exact decimals from the text, batches of ``LATEST_QUOTES_BATCH`` symbols, the
client's retries, bad entries dropped."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.simulator import AlpacaSimulator
from apps.simulator.rest import LATEST_QUOTES_PATH
from libs.market_data.broker import (
    LATEST_QUOTES_BATCH,
    AlpacaRestClient,
    LatestQuote,
    decode_latest_quotes,
)
from libs.market_data.exceptions import (
    BrokerAuthError,
    BrokerRateLimitError,
    BrokerResponseError,
    BrokerUnavailableError,
)
from tests.helpers import quote
from tests.libs.market_data.broker.sim_client import client_for

WHAT = "GET /v2/stocks/quotes/latest"


def test_decoding_keeps_the_exact_text_of_every_price() -> None:
    body = (
        b'{"quotes":{"AAPL":{"t":"2022-03-18T14:02:43.651613184Z","ax":"P","ap":161.11,'
        b'"as":13,"bx":"K","bp":161.1,"bs":2,"c":["R"],"z":"C"},'
        b'"MSFT":{"t":"2022-03-18T14:02:43Z","ap":0.1000000000000000055511151231257827,'
        b'"as":1,"bp":0.1,"bs":1}}}'
    )
    quotes = decode_latest_quotes(body, WHAT)
    assert quotes["AAPL"] == LatestQuote(
        symbol="AAPL",
        bid_price=Decimal("161.1"),
        ask_price=Decimal("161.11"),
        bid_size=2,
        ask_size=13,
        timestamp="2022-03-18T14:02:43.651613184Z",
        bid_exchange="K",
        ask_exchange="P",
    )
    assert str(quotes["MSFT"].ask_price) == "0.1000000000000000055511151231257827"
    assert decode_latest_quotes(b'{"quotes":{}}', WHAT) == {}


def test_a_bad_entry_is_dropped_and_a_bad_body_is_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    body = (
        b'{"quotes":{"OK":{"t":"2022-03-18T14:02:43Z","ap":1.01,"as":1,"bp":1,"bs":1},'
        b'"NOSIZE":{"t":"2022-03-18T14:02:43Z","ap":1.01,"bp":1,"bs":1},'
        b'"FLOATSIZE":{"t":"2022-03-18T14:02:43Z","ap":1.01,"as":1.5,"bp":1,"bs":1},'
        b'"NULL":null}}'
    )
    assert list(decode_latest_quotes(body, WHAT)) == ["OK"]
    assert "ignoring the quote of NOSIZE" in caplog.text
    for bad in (b"[]", b"{", b'{"quotes":[]}'):
        with pytest.raises(BrokerResponseError, match="unreadable answer"):
            decode_latest_quotes(bad, WHAT)


async def test_latest_quotes_from_the_simulator_are_exact(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    await simulator.send_quotes([quote("AAPL", "190.10", "190.125", t="2026-01-02T15:00:00.5Z")])
    quotes = await broker.get_latest_quotes(["AAPL", "UNKNOWN", "AAPL"])
    assert list(quotes) == ["AAPL"]
    assert quotes["AAPL"].bid_price == Decimal("190.10")
    assert str(quotes["AAPL"].bid_price) == "190.10"
    assert quotes["AAPL"].timestamp == "2026-01-02T15:00:00.5Z"


async def test_symbols_go_in_batches_with_the_feed(simulator: AlpacaSimulator) -> None:
    symbols = [f"S{i:03d}" for i in range(LATEST_QUOTES_BATCH * 2 + 5)]
    for symbol in symbols[::50]:
        simulator.set_latest_quote(symbol, "5.00", "5.01")
    async with client_for(simulator, feed="sip") as client:
        quotes = await client.get_latest_quotes(symbols)
    assert sorted(quotes) == symbols[::50]
    assert simulator.rest.count(LATEST_QUOTES_PATH) == 3
    assert client.requests_sent == 3
    assert LATEST_QUOTES_BATCH == 100


async def test_the_query_carries_the_symbols_and_feed(simulator: AlpacaSimulator) -> None:
    seen: list[str] = []
    handle = simulator.rest.handle

    def spy(request):  # type: ignore[no-untyped-def]
        seen.append(request.path)
        return handle(request)

    simulator.rest.handle = spy  # type: ignore[method-assign]
    async with client_for(simulator, feed="iex") as client:
        await client.get_latest_quotes(["AAPL", "MSFT"])
    query = parse_qs(urlsplit(seen[0]).query)
    assert query == {"symbols": ["AAPL,MSFT"], "feed": ["iex"]}


async def test_failures_are_retried_by_the_client_policy(simulator: AlpacaSimulator) -> None:
    simulator.set_latest_quote("AAPL", "5.00", "5.01")
    simulator.fail_latest_quotes(503, times=2)
    async with client_for(simulator, max_attempts=3) as client:
        assert list(await client.get_latest_quotes(["AAPL"])) == ["AAPL"]
        assert client.requests_sent == 3

        simulator.fail_latest_quotes(503, times=3)
        with pytest.raises(BrokerUnavailableError, match="HTTP 503"):
            await client.get_latest_quotes(["AAPL"])

        # A wait longer than the client sits out fails at once, with the wait.
        simulator.fail_latest_quotes(429, retry_after=60)
        with pytest.raises(BrokerRateLimitError) as caught:
            await client.get_latest_quotes(["AAPL"])
        assert caught.value.retry_after == 60

    async with client_for(simulator, secret_key="wrong") as client:
        with pytest.raises(BrokerAuthError):
            await client.get_latest_quotes(["AAPL"])
