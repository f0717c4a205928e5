"""RedisPriceSink when Redis misbehaves but keeps the connection: refused writes
(``-OOM``, ``-READONLY``) and a hung server. Real redis-server processes throughout.

Each test checks the four promises: no event for a price Redis did not cache (from
Redis's own ``MONITOR`` record), the newest price per symbol rewritten once the fault
clears, a state that names the fault meanwhile, and ``redis.recovered`` afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio

from libs.market_data.pipeline.processor import PriceUpdate
from libs.market_data.pipeline.sink import RedisPriceSink, SinkState
from libs.redis_client import RedisConnectionParams
from libs.redis_embedded import EmbeddedRedis
from tests.fixtures.monitor import monitor
from tests.helpers import eventually, status_notices

SYMBOLS = ("AAPL", "MSFT")


def update(symbol: str, n: int) -> PriceUpdate:
    stamp = f"2026-01-02T15:00:{n // 1000:02d}.{n % 1000:03d}Z"
    price = {"symbol": symbol, "mid": str(n), "timestamp": stamp}
    event = {"event_type": "price.updated", "symbol": symbol, "price": str(n), "timestamp": stamp}
    return (symbol, json.dumps(price).encode(), json.dumps(event).encode())


def cached(params: RedisConnectionParams, symbol: str) -> str | None:
    with redis.Redis(**params.redis_kwargs()) as client:
        raw = client.get(f"price:{symbol}")
    return None if raw is None else str(json.loads(raw)["mid"])


def admin(params: RedisConnectionParams, *command: str) -> Any:
    with redis.Redis(**params.redis_kwargs()) as client:
        return client.execute_command(*command)


OOM = (("CONFIG", "SET", "maxmemory", "1"), ("CONFIG", "SET", "maxmemory", "0"), "OOM")
READONLY = (("REPLICAOF", "127.0.0.1", "1"), ("REPLICAOF", "NO", "ONE"), "READONLY")


@pytest.mark.parametrize(("inject", "clear", "error"), [OOM, READONLY], ids=["oom", "readonly"])
async def test_refused_writes_publish_nothing_and_are_rewritten_when_accepted_again(
    redis_factory: Callable[..., EmbeddedRedis],
    inject: tuple[str, ...],
    clear: tuple[str, ...],
    error: str,
) -> None:
    server = redis_factory()
    params = server.params
    admin(params, "CONFIG", "SET", "maxmemory-policy", "noeviction")
    sink = RedisPriceSink(params, ttl=60)
    await sink.start()
    try:
        async with status_notices(params) as seen, monitor(params) as log:
            await sink.write([update(s, 1) for s in SYMBOLS])
            assert await sink.flush(5)
            admin(params, *inject)
            for n in range(2, 52):
                await sink.write([update(s, n) for s in SYMBOLS])
            await eventually(lambda: sink.state is SinkState.REFUSED, what="refusal noticed")
            assert error in (sink.problem() or "")
            assert sink.pending_symbols <= len(SYMBOLS)  # newest per symbol, not 100 updates
            assert all(cached(params, s) == "1" for s in SYMBOLS)
            admin(params, *clear)
            cleared = time.monotonic()
            await eventually(
                lambda: all(cached(params, s) == "51" for s in SYMBOLS),
                timeout=10,
                what="newest prices rewritten",
            )
            converged = time.monotonic() - cleared
            await eventually(
                lambda: any(n["event_type"] == "redis.recovered" for n in seen),
                what="recovery announced",
            )
        recovered = next(n for n in seen if n["event_type"] == "redis.recovered")
        assert recovered["cause"] == "refused"
        assert recovered["symbols_rewritten"] == sorted(SYMBOLS)
        assert sink.state is SinkState.UP and sink.problem() is None
        assert sink.stats()["quotes_refused"] >= 2 * 50
        # Redis's own record: no event for a price it did not cache first.
        assert log.phantom_events() == []
        published = {(s, e["price"]) for s, e in log.events()}
        assert {(s, "51") for s in SYMBOLS} <= published
        assert not {(s, "25") for s in SYMBOLS} & published  # refused, never announced
        assert converged < 3.0
    finally:
        await sink.close()


async def test_a_hung_redis_never_holds_the_writer_past_its_timeout(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    server = redis_factory()
    params = server.params
    pid = server.pid
    assert pid is not None
    sink = RedisPriceSink(params, ttl=60, max_in_flight=4, write_timeout=0.3)
    await sink.start()
    try:
        async with status_notices(params) as seen:
            await sink.write([update(s, 0) for s in SYMBOLS])
            assert await sink.flush(5)
            os.kill(pid, signal.SIGSTOP)
            try:
                longest = 0.0
                for n in range(1, 301):
                    started = time.monotonic()
                    await sink.write([update(s, n) for s in SYMBOLS])
                    longest = max(longest, time.monotonic() - started)
                assert sink.state is SinkState.UNRESPONSIVE
                assert "not answering" in (sink.problem() or "")
                assert sink.pending_symbols == len(SYMBOLS)
            finally:
                os.kill(pid, signal.SIGCONT)
            await eventually(
                lambda: all(cached(params, s) == "300" for s in SYMBOLS),
                timeout=10,
                what="newest prices written once Redis answers",
            )
            await eventually(
                lambda: any(n["event_type"] == "redis.recovered" for n in seen),
                what="recovery announced",
            )
        assert sink.state is SinkState.UP
        # One wait of the write timeout, not one per write: the reader kept reading.
        # Unbounded, the first write after the stop would wait for the SIGCONT.
        assert longest < 0.3 + 2.0
        recovered = next(n for n in seen if n["event_type"] == "redis.recovered")
        assert recovered["cause"] == "unresponsive"
    finally:
        await sink.close()


async def test_an_older_refused_write_never_replaces_a_newer_landed_one(
    redis_factory: Callable[..., EmbeddedRedis],
) -> None:
    # Refused at n=2, accepted again for n=3: the retry must not bring back 2.
    server = redis_factory()
    params = server.params
    admin(params, "CONFIG", "SET", "maxmemory-policy", "noeviction")
    sink = RedisPriceSink(params, ttl=60)
    await sink.start()
    try:
        admin(params, "CONFIG", "SET", "maxmemory", "1")
        await sink.write([update("AAPL", 2)])
        await eventually(lambda: sink.state is SinkState.REFUSED, what="refused")
        admin(params, "CONFIG", "SET", "maxmemory", "0")
        await sink.write([update("AAPL", 3)])
        await eventually(lambda: sink.state is SinkState.UP, what="recovered")
        assert await sink.flush(5)
        assert sink.pending_symbols == 0  # nothing older is left for a retry to write
        assert cached(params, "AAPL") == "3"
    finally:
        await sink.close()
