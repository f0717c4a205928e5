"""PnLService: which sources it asks, in what order, and how it degrades. Stand-ins for
the broker and the cache so each failure can be chosen; the arithmetic itself is
test_compute.py's, and the service over real sockets test_positions_api.py's."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

import pytest

from libs.market_data import BrokerUnavailableError
from libs.market_data.broker import (
    Position,
    PositionSide,
    PreviousClose,
    PreviousCloseCache,
    RecentPositions,
)
from libs.market_data.pnl import PnLService, PriceSource
from libs.market_data.types import PriceData
from libs.redis_client import RedisClientError

READ_AT = 1_780_000_000.25  # 2026-05-28T20:26:40.25Z
CLOSE = PreviousClose(Decimal("140.25"), "2026-05-27T04:00:00Z")


def long(symbol: str, qty: str = "1", entry: str = "100") -> Position:
    return Position(
        symbol=symbol, side=PositionSide.LONG, qty=Decimal(qty), avg_entry_price=Decimal(entry)
    )


def price(symbol: str, mid: str) -> PriceData:
    m = Decimal(mid)
    return PriceData(
        symbol=symbol, bid=m, ask=m, mid=m, bid_size=1, ask_size=1, timestamp="2026-05-28T20:26:38Z"
    )


class Broker:
    """Positions and previous closes as the REST client gives them, counting the asks."""

    def __init__(self, positions: list[Position], closes: dict[str, PreviousClose]) -> None:
        self.positions = positions
        self.closes = closes
        self.positions_error: Exception | None = None
        self.closes_error: Exception | None = None
        self.closes_asked: list[list[str]] = []

    async def get_positions(self) -> list[Position]:
        if self.positions_error is not None:
            raise self.positions_error
        return list(self.positions)

    async def get_previous_closes(self, symbols: Iterable[str]) -> dict[str, PreviousClose]:
        wanted = list(symbols)
        self.closes_asked.append(wanted)
        if self.closes_error is not None:
            raise self.closes_error
        return {s: self.closes[s] for s in wanted if s in self.closes}


class Prices:
    """The read side of the price cache, recording each read."""

    def __init__(self, cached: dict[str, PriceData]) -> None:
        self.cached = cached
        self.error: Exception | None = None
        self.fail_from_read = 1  # with ``error`` set, the reads from this one on fail
        self.reads: list[list[str]] = []

    async def get_many(self, symbols: Iterable[str]) -> dict[str, PriceData | None]:
        wanted = list(symbols)
        self.reads.append(wanted)
        if self.error is not None and len(self.reads) >= self.fail_from_read:
            raise self.error
        return {s: self.cached.get(s) for s in wanted}


def service_for(broker: Broker, prices: Prices) -> PnLService:
    return PnLService(RecentPositions(broker), prices, PreviousCloseCache(broker))


async def test_cache_first_then_previous_closes_for_the_rest_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    broker = Broker([long("MSFT"), long("GOOGL"), long("AAPL"), long("NVDA")], {"GOOGL": CLOSE})
    prices = Prices({"AAPL": price("AAPL", "101"), "MSFT": price("MSFT", "290")})
    monkeypatch.setattr("time.time", lambda: READ_AT)
    result = await service_for(broker, prices).realtime()

    assert [row.symbol for row in result.positions] == ["AAPL", "GOOGL", "MSFT", "NVDA"]
    assert [row.price_source for row in result.positions] == [
        PriceSource.REALTIME,
        PriceSource.CLOSING,
        PriceSource.REALTIME,
        PriceSource.UNAVAILABLE,
    ]
    assert prices.reads == [["AAPL", "GOOGL", "MSFT", "NVDA"]]  # one read, sorted
    assert broker.closes_asked == [["GOOGL", "NVDA"]]  # only what the cache lacked
    assert result.positions[0].price_age_seconds == 2.25  # dated by the same clock
    assert (result.totals.positions, result.totals.priced_positions) == (4, 3)
    assert result.as_of == "2026-05-28T20:26:40.250000Z"
    assert (result.cache_error, result.closing_prices_error) == (None, None)


async def test_symbols_are_looked_up_normalised_once_and_non_tickers_never() -> None:
    broker = Broker([long("AAPL"), long(" AAPL"), long("bad sym!")], {})
    prices = Prices({"AAPL": price("AAPL", "101")})
    result = await service_for(broker, prices).realtime()
    assert prices.reads == [["AAPL"]]
    # The rows keep the broker's symbol: only the exact "AAPL" matches its cached price.
    assert {row.symbol: row.price_source for row in result.positions} == {
        " AAPL": PriceSource.UNAVAILABLE,
        "AAPL": PriceSource.REALTIME,
        "bad sym!": PriceSource.UNAVAILABLE,
    }


async def test_redis_down_falls_back_to_previous_closes_and_says_why() -> None:
    broker = Broker([long("AAPL"), long("GOOGL")], {"GOOGL": CLOSE})
    prices = Prices({"AAPL": price("AAPL", "101")})
    prices.error = RedisClientError("connection refused")
    result = await service_for(broker, prices).realtime()
    assert result.cache_error == "price cache unavailable: connection refused"
    assert broker.closes_asked == [["AAPL", "GOOGL"]]
    assert [row.price_source for row in result.positions] == [
        PriceSource.UNAVAILABLE,
        PriceSource.CLOSING,
    ]


async def test_a_cache_failing_midway_is_not_half_used() -> None:
    # Every position is then priced the same way: no mix of cached and closing prices
    # that depends on where the chunks happened to split.
    symbols = [f"S{i:04d}" for i in range(600)]
    prices = Prices({s: price(s, "1") for s in symbols})
    prices.error, prices.fail_from_read = RedisClientError("timeout"), 2
    broker = Broker([long(s) for s in symbols], {s: CLOSE for s in symbols})
    result = await service_for(broker, prices).realtime()
    assert len(prices.reads) == 2
    assert {row.price_source for row in result.positions} == {PriceSource.CLOSING}
    assert result.cache_error == "price cache unavailable: timeout"


async def test_failing_previous_closes_leave_positions_unavailable_and_say_why() -> None:
    broker = Broker([long("AAPL"), long("GOOGL")], {"GOOGL": CLOSE})
    broker.closes_error = BrokerUnavailableError("GET /v2/stocks/snapshots: HTTP 503")
    prices = Prices({"AAPL": price("AAPL", "101")})
    result = await service_for(broker, prices).realtime()
    assert result.closing_prices_error == "GET /v2/stocks/snapshots: HTTP 503"
    assert [row.price_source for row in result.positions] == [
        PriceSource.REALTIME,
        PriceSource.UNAVAILABLE,
    ]


async def test_everything_cached_asks_no_previous_close() -> None:
    broker = Broker([long("AAPL")], {"AAPL": CLOSE})
    result = await service_for(broker, Prices({"AAPL": price("AAPL", "101")})).realtime()
    assert broker.closes_asked == []
    assert result.positions[0].price_source is PriceSource.REALTIME


async def test_unreadable_positions_raise_the_brokers_error() -> None:
    broker = Broker([], {})
    broker.positions_error = BrokerUnavailableError("GET /v2/positions: HTTP 503")
    prices = Prices({})
    with pytest.raises(BrokerUnavailableError, match="GET /v2/positions"):
        await service_for(broker, prices).realtime()
    assert prices.reads == []


async def test_many_positions_are_read_from_the_cache_in_chunks() -> None:
    symbols = [f"S{i:04d}" for i in range(1200)]
    prices = Prices({s: price(s, "1") for s in symbols})
    result = await service_for(Broker([long(s) for s in symbols], {}), prices).realtime()
    assert [len(read) for read in prices.reads] == [500, 500, 200]
    assert result.totals.priced_positions == 1200
