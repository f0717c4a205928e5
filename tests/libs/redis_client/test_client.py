"""RedisClient against a real redis-server."""

from __future__ import annotations

import asyncio
import math
import socket
import time

import pytest
import redis.exceptions

from libs.redis_client import (
    RedisClient,
    RedisClientError,
    RedisCommandError,
    RedisConnectionError,
    RedisConnectionParams,
)
from tests.fixtures.redis import RedisFactory, closed_port

__all__: list[str] = []


def ttl_bounds(ttl: int, written: float) -> tuple[int, int]:
    """What TTL may read for a key given ``ttl`` seconds at ``written`` (monotonic).

    Redis rounds the remaining milliseconds to the nearest second, so the reading is the
    full ``ttl`` only within half a second of the write: the lower bound follows the time
    that really passed, however long a loaded machine took.
    """
    passed = time.monotonic() - written
    return ttl - math.ceil(passed + 0.5), ttl


async def test_setex_then_ttl(redis_client: RedisClient) -> None:
    written = time.monotonic()
    await redis_client.setex("price:AAPL", 300, '{"bid":"150.05"}')
    assert await redis_client.get("price:AAPL") == b'{"bid":"150.05"}'
    ttl = await redis_client.ttl("price:AAPL")
    low, high = ttl_bounds(300, written)
    assert max(low, 1) <= ttl <= high  # 299 <= ttl <= 300 when it took under half a second


async def test_set_with_and_without_ttl(redis_client: RedisClient) -> None:
    await redis_client.set("plain", b"\x00\xffbytes")
    written = time.monotonic()
    await redis_client.set("expiring", "v", ttl=60)
    assert await redis_client.get("plain") == b"\x00\xffbytes"
    assert await redis_client.ttl("plain") == -1
    ttl = await redis_client.ttl("expiring")
    low, high = ttl_bounds(60, written)
    assert max(low, 1) <= ttl <= high
    assert await redis_client.ttl("missing") == -2


async def test_get_missing_is_none(redis_client: RedisClient) -> None:
    assert await redis_client.get("price:NOPE") is None


async def test_mget_keeps_order_and_marks_missing(redis_client: RedisClient) -> None:
    await redis_client.set("price:A", "1")
    await redis_client.set("price:C", "3")
    values = await redis_client.mget(["price:A", "price:B", "price:C", "price:D"])
    assert values == [b"1", None, b"3", None]
    assert await redis_client.mget([]) == []


async def test_delete_and_exists(redis_client: RedisClient) -> None:
    await redis_client.set("a", "1")
    await redis_client.set("b", "2")
    assert await redis_client.exists("a")
    assert await redis_client.delete("a", "b", "never-there") == 2
    assert not await redis_client.exists("a")
    assert await redis_client.delete() == 0


async def test_ping_reports_round_trip_seconds(redis_client: RedisClient) -> None:
    elapsed = await redis_client.ping()
    assert isinstance(elapsed, float)
    assert 0 < elapsed < 1


async def test_keys_walks_with_scan_never_keys(redis_client: RedisClient) -> None:
    async with redis_client.redis.pipeline(transaction=False) as pipe:
        for i in range(2500):
            pipe.set(f"price:S{i}", i)
        for i in range(10):
            pipe.set(f"other:{i}", i)
        await pipe.execute()
    await redis_client.redis.config_resetstat()

    found = await redis_client.keys("price:*", count=100)

    assert len(found) == 2500
    assert set(found) == {f"price:S{i}" for i in range(2500)}
    stats = await redis_client.redis.info("commandstats")
    assert "cmdstat_scan" in stats
    assert "cmdstat_keys" not in stats


async def test_scan_iter_yields_text_keys(redis_client: RedisClient) -> None:
    await redis_client.set("price:X", "1")
    assert [key async for key in redis_client.scan_iter("price:*")] == ["price:X"]


async def test_spec_constructor_form(redis_params: RedisConnectionParams) -> None:
    async with RedisClient(redis_params.host, redis_params.port) as client:
        await client.setex("price:MSFT", 300, "{}")
        assert await client.get("price:MSFT") == b"{}"
        assert client.params == RedisConnectionParams(
            host=redis_params.host, port=redis_params.port
        )


async def test_from_url_and_db_isolation(redis_params: RedisConnectionParams) -> None:
    url = f"redis://{redis_params.host}:{redis_params.port}/1"
    async with RedisClient.from_url(url) as db1, RedisClient(params=redis_params) as db0:
        await db1.set("only-in-1", "x")
        assert await db1.get("only-in-1") == b"x"
        assert await db0.get("only-in-1") is None


async def test_redis_attribute_is_bytes_client(redis_client: RedisClient) -> None:
    await redis_client.redis.set("k", "v")
    assert await redis_client.redis.get("k") == b"v"


async def test_close_is_idempotent(redis_params: RedisConnectionParams) -> None:
    client = RedisClient(params=redis_params)
    await client.ping()
    connection_id = await client.redis.client_id()
    async with RedisClient(params=redis_params) as observer:

        async def open_ids() -> set[int]:
            return {int(entry["id"]) for entry in await observer.redis.client_list()}

        assert connection_id in await open_ids()
        await client.close()
        # Closed for real: the server no longer has the pool's connection (it drops it on
        # the FIN; polled for, at most 5 s). A second close changes nothing.
        for _ in range(500):
            if connection_id not in await open_ids():
                break
            await asyncio.sleep(0.01)
        await client.close()
        assert connection_id not in await open_ids()


async def test_closed_port_raises_connection_error_with_cause() -> None:
    client = RedisClient("127.0.0.1", closed_port(), socket_timeout=1.0)
    try:
        with pytest.raises(RedisConnectionError) as caught:
            await client.get("price:AAPL")
    finally:
        await client.close()
    assert isinstance(caught.value, RedisClientError)
    assert isinstance(caught.value.__cause__, redis.exceptions.ConnectionError)
    assert "GET price:AAPL" in str(caught.value)


async def test_silent_server_raises_connection_error_on_timeout() -> None:
    # A listening socket that never answers: connect succeeds, the handshake times out.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        client = RedisClient("127.0.0.1", port, socket_timeout=0.2, retries=0)
        try:
            with pytest.raises(RedisConnectionError) as caught:
                await client.ping()
        finally:
            await client.close()
    assert isinstance(caught.value.__cause__, redis.exceptions.TimeoutError)


async def test_error_replies_raise_command_error(redis_client: RedisClient) -> None:
    await redis_client.redis.lpush("a-list", "x")
    with pytest.raises(RedisCommandError) as caught:
        await redis_client.get("a-list")
    assert isinstance(caught.value.__cause__, redis.exceptions.ResponseError)
    assert "WRONGTYPE" in str(caught.value)
    with pytest.raises(RedisCommandError):
        await redis_client.setex("k", 0, "v")


async def test_unix_socket_client(redis_factory: RedisFactory) -> None:
    server = redis_factory(unix_socket=True)
    assert server.unix_socket_path is not None
    async with RedisClient(unix_socket_path=server.unix_socket_path) as client:
        await client.setex("price:AAPL", 5, "x")
        assert await client.get("price:AAPL") == b"x"


async def test_password_protected_server(redis_factory: RedisFactory) -> None:
    server = redis_factory(password="correct horse")
    async with RedisClient(params=server.params) as good:
        await good.set("k", "v")
        assert await good.get("k") == b"v"
    for wrong in ("battery staple", None):
        async with RedisClient("127.0.0.1", server.port, password=wrong) as bad:
            with pytest.raises(RedisConnectionError, match="refused the credentials") as caught:
                await bad.get("k")
        assert "battery staple" not in str(caught.value)


async def test_wrong_password_over_unix_socket(redis_factory: RedisFactory) -> None:
    server = redis_factory(unix_socket=True, password="right")
    assert server.unix_socket_path is not None
    async with RedisClient(unix_socket_path=server.unix_socket_path, password="wrong") as bad:
        with pytest.raises(RedisConnectionError, match="refused the credentials"):
            await bad.ping()


async def test_client_recovers_after_redis_restart(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    async with RedisClient(params=server.params, socket_timeout=1.0) as client:
        await client.setex("price:AAPL", 300, "1")
        server.kill()
        with pytest.raises(RedisConnectionError):
            await client.get("price:AAPL")
        server.restart()
        # No persistence: the restarted server is empty, and the pool reconnects by itself.
        assert await client.get("price:AAPL") is None
        await client.setex("price:AAPL", 300, "2")
        assert await client.get("price:AAPL") == b"2"


def test_repr_does_not_show_the_password() -> None:
    client = RedisClient(password="hunter2")
    assert "hunter2" not in repr(client)
    assert "***" in repr(client)
