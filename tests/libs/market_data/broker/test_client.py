"""The Alpaca REST client against the simulator's REST endpoints over a real socket:
exact decimals, both short conventions, retries that honour the server's waits, clear
errors that never show a secret."""

from __future__ import annotations

import time
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest

from apps.simulator import AlpacaSimulator
from apps.simulator.quotes import format_price, start_price_cents
from libs.market_data import (
    BrokerAPIError,
    BrokerAuthError,
    BrokerRateLimitError,
    BrokerUnavailableError,
    MarketDataError,
)
from libs.market_data.broker import AlpacaRestClient, PositionSide
from libs.market_data.broker import client as client_module
from tests.fixtures.redis import closed_port
from tests.helpers import quote
from tests.libs.market_data.broker.sim_client import SECRET, client_for

# -- positions -----------------------------------------------------------------------------


async def test_positions_are_exact_decimals_with_shorts_negative(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    simulator.set_positions(
        [
            {"symbol": "AAPL", "qty": "10", "avg_entry_price": "187.123456789"},
            {"symbol": "MSFT", "qty": "-5", "avg_entry_price": "300.10"},
            {"symbol": "GOOGL", "qty": "2.5", "side": "short", "avg_entry_price": "140"},
        ]
    )
    positions = {p.symbol: p for p in await broker.get_positions()}
    assert set(positions) == {"AAPL", "MSFT", "GOOGL"}
    aapl, msft, googl = positions["AAPL"], positions["MSFT"], positions["GOOGL"]
    assert (aapl.side, aapl.qty, aapl.avg_entry_price) == (
        PositionSide.LONG,
        Decimal("10"),
        Decimal("187.123456789"),
    )
    assert (msft.side, msft.qty) == (PositionSide.SHORT, Decimal("-5"))
    assert (googl.side, googl.qty) == (PositionSide.SHORT, Decimal("-2.5"))
    for position in positions.values():
        for name in ("qty", "avg_entry_price", "cost_basis", "market_value", "current_price"):
            assert type(getattr(position, name)) is Decimal, name
    assert aapl.asset_class == "us_equity"
    # The simulator's own figures follow its start price while nothing is quoted.
    start = Decimal(format_price(start_price_cents("MSFT")))
    assert msft.current_price == start
    assert msft.cost_basis == Decimal("-1500.50")


async def test_positions_follow_the_simulated_quotes(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    simulator.set_positions([{"symbol": "AAPL", "qty": "1", "avg_entry_price": "1"}])
    await simulator.send_quotes([quote("AAPL", "187.25", "187.30")])
    (position,) = await broker.get_positions()
    assert position.current_price == Decimal("187.275")


async def test_no_positions_is_an_empty_list(broker: AlpacaRestClient) -> None:
    assert await broker.get_positions() == []


# -- previous closes ---------------------------------------------------------------------------


async def test_previous_closes_are_exact_from_json_numbers(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    simulator.rest.set_previous_close("AAPL", "187.1234567890123456789")
    closes = await broker.get_previous_closes(["AAPL", "MSFT"])
    assert closes["AAPL"].price == Decimal("187.1234567890123456789")
    assert type(closes["AAPL"].price) is Decimal
    assert closes["MSFT"].price == Decimal(format_price(start_price_cents("MSFT")))
    assert closes["MSFT"].timestamp.endswith("T04:00:00Z")


async def test_previous_closes_of_many_symbols_are_asked_in_chunks(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    symbols = [f"S{i}" for i in range(250)]
    closes = await broker.get_previous_closes(symbols)
    assert set(closes) == set(symbols)
    assert simulator.rest.count("/v2/stocks/snapshots") == 3


# -- retries and errors ------------------------------------------------------------------------


async def test_503_is_retried_honouring_retry_after(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    simulator.set_positions([{"symbol": "AAPL", "qty": "1", "avg_entry_price": "1"}])
    simulator.fail_positions(503, times=2, retry_after=0.4)
    started = time.monotonic()
    positions = await broker.get_positions()
    elapsed = time.monotonic() - started
    assert [p.symbol for p in positions] == ["AAPL"]
    assert simulator.rest.requests == [
        ("/v2/positions", 503),
        ("/v2/positions", 503),
        ("/v2/positions", 200),
    ]
    assert elapsed >= 0.8, "both waits of Retry-After: 0.4 were honoured"


async def test_429_is_retried_at_the_rate_limit_reset(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    # No Retry-After: X-Ratelimit-Reset (whole epoch seconds) says when the window ends.
    reset = time.time() + 1.0
    simulator.fail_rest("positions", 429, ratelimit_reset=reset)
    assert await broker.get_positions() == []
    assert time.time() >= reset - 0.05
    assert [status for _, status in simulator.rest.requests] == [429, 200]


async def test_429_after_every_attempt_is_a_rate_limit_error(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    simulator.fail_positions(429, times=3, retry_after=0.05)
    with pytest.raises(BrokerRateLimitError) as caught:
        await broker.get_positions()
    assert caught.value.status == 429
    assert caught.value.code == 42910000
    assert caught.value.retry_after == pytest.approx(0.05)
    assert "after 3 attempts" in str(caught.value)
    assert simulator.rest.count("/v2/positions") == 3


async def test_a_wait_longer_than_the_cap_fails_at_once_with_retry_after(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    simulator.fail_positions(429, retry_after=120)
    started = time.monotonic()
    with pytest.raises(BrokerRateLimitError) as caught:
        await broker.get_positions()
    assert time.monotonic() - started < 2
    assert caught.value.retry_after == 120
    assert simulator.rest.count("/v2/positions") == 1


async def test_5xx_without_retry_after_backs_off_then_fails(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    simulator.fail_positions(500, times=5)
    with pytest.raises(BrokerUnavailableError, match=r"HTTP 500 .*internal server error"):
        await broker.get_positions()
    assert simulator.rest.count("/v2/positions") == 3


@pytest.mark.parametrize(("status", "endpoint"), [(401, "positions"), (403, "snapshots")])
async def test_refused_credentials_are_a_clear_error_never_retried(
    simulator: AlpacaSimulator, status: int, endpoint: str
) -> None:
    wrong = "wrong-secret-9f8e7d"
    async with client_for(simulator, secret_key=wrong) as client:
        with pytest.raises(BrokerAuthError) as caught:
            if endpoint == "positions":
                await client.get_positions()
            else:
                await client.get_previous_closes(["AAPL"])
    message = str(caught.value)
    assert caught.value.status == status
    assert f"HTTP {status}" in message
    assert "ALPACA_API_KEY" in message and "ALPACA_SECRET_KEY" in message
    assert wrong not in message and SECRET not in message
    assert len(simulator.rest.requests) == 1


async def test_injected_401_is_an_auth_error(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    simulator.fail_positions(401)
    with pytest.raises(BrokerAuthError, match="request is not authorized"):
        await broker.get_positions()


async def test_other_4xx_is_a_broker_api_error(
    simulator: AlpacaSimulator, broker: AlpacaRestClient
) -> None:
    simulator.fail_positions(404)
    with pytest.raises(BrokerAPIError) as caught:
        await broker.get_positions()
    assert type(caught.value) is BrokerAPIError
    assert caught.value.status == 404
    assert simulator.rest.count("/v2/positions") == 1


async def test_nobody_listening_is_unavailable_after_the_retries() -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    async with AlpacaRestClient(
        "k", "s", base_url=url, data_base_url=url, retry_base_delay=0.01
    ) as client:
        with pytest.raises(
            BrokerUnavailableError, match=r"no answer .* after 3 attempts"
        ) as caught:
            await client.get_positions()
    assert caught.value.status is None
    assert isinstance(caught.value, MarketDataError)
    assert isinstance(caught.value.__cause__, Exception)
    assert client.requests_sent == 3


def test_bad_client_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        AlpacaRestClient("k", "s", max_attempts=0)
    with pytest.raises(ValueError, match="timeout"):
        AlpacaRestClient("k", "s", timeout=0)


def test_retry_delays_must_be_positive_and_ordered() -> None:
    with pytest.raises(ValueError, match="retry_base_delay"):
        AlpacaRestClient("k", "s", retry_base_delay=0)
    with pytest.raises(ValueError, match="max_retry_wait"):
        AlpacaRestClient("k", "s", retry_base_delay=2.0, max_retry_wait=1.0)


async def test_retries_without_a_server_wait_back_off_by_the_shared_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No Retry-After: the waits are BackoffPolicy's, doubling from retry_base_delay up to
    # max_retry_wait, with no jitter.
    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)

    # Only the client's module sees the stand-in; the event loop keeps the real sleep.
    monkeypatch.setattr(client_module, "asyncio", SimpleNamespace(sleep=record))
    transport = httpx.MockTransport(lambda request: httpx.Response(503, text="busy"))
    async with AlpacaRestClient(
        "k", "s", max_attempts=4, retry_base_delay=0.5, max_retry_wait=1.5, transport=transport
    ) as client:
        with pytest.raises(BrokerUnavailableError, match="after 4 attempts"):
            await client.get_positions()
    assert waits == [0.5, 1.0, 1.5]
