"""PriceCache reads what the stream writes; counts hits and misses; survives bad entries."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from libs.market_data import PriceData
from libs.market_data.cache.price_cache import PriceCache, price_age_seconds
from libs.redis_client import RedisClient


def price(symbol: str, mid: str, timestamp: str = "2024-07-24T07:56:53.639713735Z") -> PriceData:
    return PriceData(
        symbol=symbol, bid=Decimal(mid), ask=Decimal(mid), mid=Decimal(mid),
        bid_size=1, ask_size=1, timestamp=timestamp,
    )  # fmt: skip


async def test_get_and_get_many_count_hits_and_misses(redis_client: RedisClient) -> None:
    await redis_client.setex("price:AAPL", 60, price("AAPL", "150.10").model_dump_json())
    await redis_client.setex("price:MSFT", 60, price("MSFT", "400.00").model_dump_json())
    cache = PriceCache(redis_client)
    found = await cache.get("aapl")
    assert found is not None and found.mid == Decimal("150.10")
    many = await cache.get_many(["MSFT", "TSLA", "AAPL"])
    assert list(many) == ["MSFT", "TSLA", "AAPL"]
    assert many["TSLA"] is None
    assert many["MSFT"] is not None and str(many["MSFT"].mid) == "400.00"
    assert (cache.hits, cache.misses) == (3, 1)


async def test_unreadable_entry_is_a_miss_not_an_error(redis_client: RedisClient) -> None:
    await redis_client.setex("price:AAPL", 60, b"{not json")
    cache = PriceCache(redis_client)
    assert await cache.get("AAPL") is None
    assert cache.misses == 1


async def test_bad_symbols_refused(redis_client: RedisClient) -> None:
    with pytest.raises(ValueError):
        await PriceCache(redis_client).get_many(["AAPL", "no way"])


def test_age_from_the_exchange_timestamp() -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 30)) + ".5Z"
    age = price_age_seconds(price("A", "1", stamp))
    assert 29 <= age <= 31
