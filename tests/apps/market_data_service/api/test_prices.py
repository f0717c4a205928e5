"""Latest-price reads over HTTP, from what the stream cached: one symbol, many at once,
404 when nothing fresh is cached (including after the TTL ran out), 422 for bad input,
503 without Redis, and the cache half of ``/health``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from apps.simulator import AlpacaSimulator
from libs.redis_client import RedisClient, RedisConnectionParams
from tests.fixtures.monitor import monitor
from tests.fixtures.redis import closed_port
from tests.fixtures.service import Service, ServiceFactory
from tests.helpers import eventually, quote

STAMP = "2024-07-24T07:56:53.639713735Z"


async def subscribe(service: Service, *symbols: str) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": list(symbols)})
    assert reply.status_code == 201, reply.text


async def send_and_wait(service: Service, simulator: AlpacaSimulator, *quotes: Any) -> None:
    """Send one frame and wait until Redis acknowledged its writes."""
    before = service.stream.get_connection_stats()["quotes_received"]
    await simulator.send_quotes(list(quotes))
    await eventually(
        lambda: service.stream.get_connection_stats()["quotes_received"] == before + len(quotes),
        what="the quotes to be handled",
    )
    assert await service.stream.sink.flush(5.0)


def now_stamp(seconds_ago: float = 0.0) -> str:
    when = time.time() - seconds_ago
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(when)) + f".{int(when % 1 * 1e9):09d}Z"


# -- one symbol ------------------------------------------------------------------------------


async def test_latest_price_is_the_cached_one_with_its_age(
    service: Service, simulator: AlpacaSimulator
) -> None:
    await subscribe(service, "AAPL")
    await send_and_wait(service, simulator, quote("AAPL", "150.00", "150.10", t=now_stamp(2.5)))
    reply = await service.http.get("/api/v1/prices/aapl")
    assert reply.status_code == 200, reply.text
    body = reply.json()
    age = body.pop("age_seconds")
    assert 2.0 <= age < 10.0
    # The event numbering (README, "What lands in Redis"): the first event of the symbol.
    assert body.pop("seq") == 1
    assert body.pop("epoch")
    assert body == {
        "symbol": "AAPL",
        "bid": "150.00",
        "ask": "150.10",
        "mid": "150.05",
        "bid_size": 1,
        "ask_size": 2,
        "timestamp": body["timestamp"],
        "exchange": "Q",
        "bid_exchange": "Q",
        "ask_exchange": "P",
    }
    # The newest price wins; an older one is dropped as stale (docs/architecture.md).
    newer = now_stamp(1.0)
    await send_and_wait(service, simulator, quote("AAPL", "151.00", "151.02", t=newer))
    body = (await service.http.get("/api/v1/prices/AAPL")).json()
    assert (body["mid"], body["timestamp"]) == ("151.01", newer)
    await send_and_wait(service, simulator, quote("AAPL", "152.00", "152.02", t=STAMP))
    body = (await service.http.get("/api/v1/prices/AAPL")).json()
    assert (body["mid"], body["timestamp"]) == ("151.01", newer)
    # The age counts from the exchange time, not from the write.
    await subscribe(service, "MSFT")
    await send_and_wait(service, simulator, quote("MSFT", "151.00", "151.02", t=STAMP))
    body = (await service.http.get("/api/v1/prices/MSFT")).json()
    assert (body["mid"], body["timestamp"]) == ("151.01", STAMP)
    assert body["age_seconds"] > 3600


async def test_a_symbol_with_a_slash_is_read_like_any_other(
    service: Service, simulator: AlpacaSimulator
) -> None:
    await subscribe(service, "BTC/USD")
    await send_and_wait(service, simulator, quote("BTC/USD", "60000.5", "60001.5"))
    reply = await service.http.get("/api/v1/prices/btc/usd")
    assert reply.status_code == 200, reply.text
    assert reply.json()["mid"] == "60001.0"


async def test_no_price_is_404_saying_why(service: Service) -> None:
    reply = await service.http.get("/api/v1/prices/TSLA")
    assert reply.status_code == 404
    assert "TSLA" in reply.json()["detail"]
    assert "not subscribed" in reply.json()["detail"]
    await subscribe(service, "TSLA")
    reply = await service.http.get("/api/v1/prices/TSLA")
    assert reply.status_code == 404
    assert "no quote cached within the last 300s" in reply.json()["detail"]


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/api/v1/prices/bad%20symbol", "bad symbol"),
        ("/api/v1/prices/AAPL!", "AAPL!"),
        ("/api/v1/prices/" + "A" * 21, "A" * 21),
        ("/api/v1/prices/" + "A" * 65, "at most 20 characters"),
    ],
    ids=["space", "punctuation", "21-chars", "65-chars"],
)
async def test_bad_symbol_is_422_naming_it(service: Service, path: str, named: str) -> None:
    reply = await service.http.get(path)
    assert reply.status_code == 422, reply.text
    assert named in reply.text


async def test_ttl_expiry_really_happens(
    start_service: ServiceFactory, simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    # No timing race: what Redis executed (MONITOR) and its own expiry state decide, not
    # how long this test took between two reads.
    started = await start_service(price_cache_ttl=1)
    await started.wait_connected()
    await subscribe(started, "AAPL")
    client = RedisClient(params=redis_params)
    try:
        async with monitor(redis_params) as log:
            await send_and_wait(started, simulator, quote("AAPL", "10.00", "10.02"))
            # PTTL, not TTL: TTL rounds, so a live 1 s key reads 0 after half a second.
            left_ms = await client.redis.pttl("price:AAPL")
            assert left_ms == -2 or 0 < left_ms <= 1000, left_ms  # -2: already expired
            reply = await started.http.get("/api/v1/prices/AAPL")
            if await client.exists("price:AAPL"):  # cached after the answer: so during it
                assert reply.status_code == 200, reply.text
            await eventually_gone(client, "price:AAPL")
        # Written once with the configured TTL, and gone without anyone deleting it.
        aapl = [c for c in log.commands if c[1:2] == ["price:AAPL"]]
        writes = [c for c in aapl if c[0].upper() == "SET"]
        assert [(c[-2].upper(), c[-1]) for c in writes] == [("EX", "1")], writes
        assert [c for c in aapl if c[0].upper() in ("DEL", "UNLINK", "GETDEL")] == []
    finally:
        await client.close()
    reply = await started.http.get("/api/v1/prices/AAPL")
    assert reply.status_code == 404
    assert "within the last 1s" in reply.json()["detail"]
    health = await started.health()
    assert health["cache"]["missing_symbols"] == 1
    assert health["cache"]["fresh_symbols"] == 0


async def eventually_gone(client: RedisClient, key: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while await client.exists(key):
        assert time.monotonic() < deadline, f"{key} outlived its TTL"
        await asyncio.sleep(0.02)


# -- many symbols ----------------------------------------------------------------------------


async def test_many_prices_in_one_read_with_the_missing_listed(
    service: Service, simulator: AlpacaSimulator
) -> None:
    await subscribe(service, "AAPL", "MSFT", "GOOGL")
    await send_and_wait(
        service, simulator, quote("AAPL", "150.00", "150.10"), quote("MSFT", "420.00", "420.02")
    )
    reply = await service.http.get("/api/v1/prices", params={"symbols": "msft,GOOGL,AAPL,TSLA"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert list(body["prices"]) == ["MSFT", "AAPL"]
    assert body["prices"]["MSFT"]["mid"] == "420.01"
    assert body["prices"]["AAPL"]["mid"] == "150.05"
    assert all(p["age_seconds"] >= 0 for p in body["prices"].values())
    assert body["missing"] == ["GOOGL", "TSLA"]
    # The parameter may repeat; duplicates count once.
    reply = await service.http.get(
        "/api/v1/prices", params=[("symbols", "AAPL"), ("symbols", "aapl,MSFT,")]
    )
    assert reply.status_code == 200
    assert list(reply.json()["prices"]) == ["AAPL", "MSFT"]
    assert reply.json()["missing"] == []


async def test_many_prices_take_one_redis_round_trip(
    service: Service, simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    symbols = [f"S{i:03d}" for i in range(100)]
    await subscribe(service, *symbols)
    await send_and_wait(service, simulator, *[quote(s, "1.00", "1.01") for s in symbols[:60]])
    client = RedisClient(params=redis_params)
    try:
        before = await command_calls(client)
        reply = await service.http.get("/api/v1/prices", params={"symbols": ",".join(symbols)})
        after = await command_calls(client)
    finally:
        await client.close()
    assert reply.status_code == 200
    assert len(reply.json()["prices"]) == 60
    assert reply.json()["missing"] == symbols[60:]
    assert after.get("mget", 0) - before.get("mget", 0) == 1
    assert after.get("get", 0) == before.get("get", 0)


async def command_calls(client: RedisClient) -> dict[str, int]:
    stats: dict[str, Any] = await client.redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("", "symbols"),
        ("?symbols=", "at least one"),
        ("?symbols=,,", "at least one"),
        ("?symbols=AAPL,bad%20one", "bad one"),
        ("?symbols=" + ",".join(f"S{i:03d}" for i in range(101)), "at most 100"),
        ("?symbols=" + ",".join(["AAPL"] * 1001), "at most 100"),
    ],
    ids=["absent", "empty", "only-commas", "bad-ticker", "101-symbols", "huge-list"],
)
async def test_bad_symbol_lists_are_422_naming_the_problem(
    service: Service, query: str, named: str
) -> None:
    reply = await service.http.get("/api/v1/prices" + query)
    assert reply.status_code == 422, reply.text
    assert named in reply.text


async def test_exactly_100_symbols_are_accepted(service: Service) -> None:
    query = ",".join(f"S{i:03d}" for i in range(100))
    reply = await service.http.get("/api/v1/prices", params={"symbols": query})
    assert reply.status_code == 200
    assert len(reply.json()["missing"]) == 100


# -- without Redis ---------------------------------------------------------------------------


async def test_reads_without_redis_are_503_not_500(start_service: ServiceFactory) -> None:
    started = await start_service(redis_port=closed_port())
    await started.wait_health(lambda b: b["websocket_connected"], "the stream to connect")
    reply = await started.http.get("/api/v1/prices/AAPL")
    assert reply.status_code == 503
    assert "Redis" in reply.json()["detail"]
    reply = await started.http.get("/api/v1/prices", params={"symbols": "AAPL,MSFT"})
    assert reply.status_code == 503
    health = await started.health()
    assert health["cache"]["redis_reachable"] is False
    assert health["cache"]["redis_ping_ms"] is None
    assert health["cache"]["error"]


# -- /health: the cache --------------------------------------------------------------------


async def test_health_reports_redis_ping_and_fresh_stale_missing_prices(
    service: Service, simulator: AlpacaSimulator
) -> None:
    body = await service.health()
    cache = body["cache"]
    assert cache["redis_reachable"] is True
    assert 0 < cache["redis_ping_ms"] < 1000
    assert (cache["fresh_symbols"], cache["stale_symbols"], cache["missing_symbols"]) == (0, 0, 0)
    assert cache["oldest_age_seconds"] is None
    assert cache["stale_after_seconds"] == 300

    await subscribe(service, "AAPL", "MSFT", "GOOGL")
    await send_and_wait(
        service,
        simulator,
        quote("AAPL", "1.00", "1.01"),  # now: fresh
        quote("MSFT", "1.00", "1.01", t=STAMP),  # an old exchange time: stale
    )
    cache = (await service.health())["cache"]
    assert (cache["fresh_symbols"], cache["stale_symbols"], cache["missing_symbols"]) == (1, 1, 1)
    assert cache["oldest_age_seconds"] > 3600
    # The spec's fields are still there.
    assert body["status"] == "healthy"
    assert body["redis_connected"] is True
