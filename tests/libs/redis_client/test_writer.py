"""The pipelined writer against a real redis-server: ordering, replies, errors, loss."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable

import pytest
import redis

from libs.redis_client import RedisClient, RedisConnectionError, RedisConnectionParams
from libs.redis_client.exceptions import RedisCommandError
from libs.redis_client.replies import RedisProtocolError, ReplyCounter
from libs.redis_client.writer import PipelinedWriter, pack_commands
from tests.helpers import eventually


async def test_many_batches_in_flight_land_in_order(redis_client: RedisClient) -> None:
    writer: PipelinedWriter[int] = PipelinedWriter(redis_client.params, max_in_flight=4)
    await writer.connect()
    try:
        for batch in range(200):
            commands = [("RPUSH", "log", f"{batch}:{i}") for i in range(5)]
            writer.send(pack_commands(commands), len(commands), batch)
            await writer.wait_writable()
            assert writer.in_flight <= 4
        assert await writer.flush(5)
        assert writer.in_flight == 0
        assert writer.batches_done == 200
        assert writer.last_round_trip is not None
    finally:
        await writer.close()
    expected = [f"{b}:{i}".encode() for b in range(200) for i in range(5)]
    assert await redis_client.redis.lrange("log", 0, -1) == expected


async def test_error_replies_are_counted_and_do_not_desynchronise(
    redis_client: RedisClient,
) -> None:
    await redis_client.set("text", "not a number")
    writer: PipelinedWriter[str] = PipelinedWriter(redis_client.params)
    await writer.connect()
    try:
        writer.send(pack_commands([("INCR", "text"), ("SET", "a", "1")]), 2, "first")
        writer.send(pack_commands([("SET", "b", "2")]), 1, "second")
        assert await writer.flush(5)
        assert writer.reply_errors == 1
        assert "not an integer" in (writer.last_reply_error or "")
        assert writer.batches_done == 2
    finally:
        await writer.close()
    assert await redis_client.mget(["a", "b"]) == [b"1", b"2"]


async def test_lost_connection_hands_back_unconfirmed_batches_in_order(
    redis_factory: Callable[..., object],
) -> None:
    server = redis_factory()
    params: RedisConnectionParams = server.params  # type: ignore[attr-defined]
    lost: list[tuple[list[int], BaseException]] = []
    writer: PipelinedWriter[int] = PipelinedWriter(
        params, on_lost=lambda tokens, exc: lost.append((tokens, exc))
    )
    await writer.connect()
    admin = redis.Redis(**params.redis_kwargs())
    try:
        writer.send(pack_commands([("SET", "x", "0")]), 1, 0)
        assert await writer.flush(5)
        # Hold every reply, so the next batches are in flight when the server dies.
        admin.execute_command("CLIENT", "PAUSE", "10000", "ALL")
        for token in (1, 2, 3):
            writer.send(pack_commands([("SET", "x", str(token))]), 1, token)
        await asyncio.sleep(0.1)
        assert writer.in_flight == 3
        await asyncio.to_thread(server.kill)  # type: ignore[attr-defined]
        await eventually(lambda: lost, what="loss reported")
    finally:
        admin.close()
        await writer.close()
    tokens, error = lost[0]
    assert tokens == [1, 2, 3]
    assert isinstance(error, RedisConnectionError)
    assert not writer.connected
    with pytest.raises(RedisConnectionError):
        writer.send(b"*1\r\n$4\r\nPING\r\n", 1, 4)


@pytest.mark.timeout(60)
async def test_close_returns_when_a_frozen_redis_never_reads_what_is_buffered(
    redis_factory: Callable[..., object],
) -> None:
    server = redis_factory()
    params: RedisConnectionParams = server.params  # type: ignore[attr-defined]
    lost: list[list[int]] = []
    writer: PipelinedWriter[int] = PipelinedWriter(
        params, max_in_flight=1000, on_lost=lambda tokens, exc: lost.append(tokens)
    )
    await writer.connect()
    pid: int = server.pid  # type: ignore[attr-defined]
    os.kill(pid, signal.SIGSTOP)  # the socket stays open; nothing is read any more
    try:
        value = "x" * 1_000_000
        for token in range(40):  # 40 MB: far past what the kernel's buffers take
            writer.send(pack_commands([("SET", f"k{token}", value)]), 1, token)
        await asyncio.sleep(0.2)
        started = time.monotonic()
        # Unbounded, close waits for the transport to drain: until the SIGCONT.
        await asyncio.wait_for(writer.close(), 30)
        took = time.monotonic() - started
    finally:
        os.kill(pid, signal.SIGCONT)
    assert took < 10, took
    assert lost == [list(range(40))]
    assert not writer.connected


async def test_password_and_database_selection(redis_factory: Callable[..., object]) -> None:
    server = redis_factory(password="s3cret")
    base: RedisConnectionParams = server.params  # type: ignore[attr-defined]
    params = RedisConnectionParams(host=base.host, port=base.port, db=3, password="s3cret")
    writer: PipelinedWriter[None] = PipelinedWriter(params)
    await writer.connect()
    try:
        writer.send(pack_commands([("SET", "k", "v")]), 1, None)
        assert await writer.flush(5)
    finally:
        await writer.close()
    client = redis.Redis(host=base.host, port=base.port, db=3, password="s3cret")
    try:
        assert client.get("k") == b"v"
    finally:
        client.close()

    wrong = RedisConnectionParams(host=base.host, port=base.port, password="wrong")
    with pytest.raises(RedisCommandError) as info:
        await PipelinedWriter[None](wrong).connect()
    assert "wrong" not in str(info.value)


async def test_unix_socket(redis_factory: Callable[..., object]) -> None:
    server = redis_factory(unix_socket=True)
    writer: PipelinedWriter[None] = PipelinedWriter(server.params)  # type: ignore[attr-defined]
    await writer.connect()
    try:
        writer.send(pack_commands([("PING",)]), 1, None)
        assert await writer.flush(5)
        assert writer.batches_done == 1
    finally:
        await writer.close()


async def test_nothing_listening_is_a_connection_error() -> None:
    params = RedisConnectionParams(host="127.0.0.1", port=9, socket_timeout=1)
    with pytest.raises(RedisConnectionError) as info:
        await PipelinedWriter[None](params).connect()
    assert isinstance(info.value.__cause__, OSError)


def test_reply_counter_handles_replies_split_across_reads() -> None:
    counter = ReplyCounter()
    stream = b"+OK\r\n:1\r\n+OK\r\n:0\r\n"
    counts = [counter.feed(stream[i : i + 3]) for i in range(0, len(stream), 3)]
    assert sum(counts) == 4
    assert counter.feed(b"+O") == 0
    assert counter.feed(b"K\r") == 0
    assert counter.feed(b"\n") == 1
    assert counter.errors == 0


def test_reply_counter_counts_errors_and_keeps_the_last_text() -> None:
    counter = ReplyCounter()
    assert counter.feed(b"-ERR first\r\n+OK\r\n-OOM command not allowed\r\n:1\r\n") == 4
    assert counter.errors == 2
    assert counter.last_error == "OOM command not allowed"


@pytest.mark.parametrize("reply", [b"$3\r\nabc\r\n", b"+OK\r\n*2\r\n:1\r\n:2\r\n"])
def test_reply_counter_refuses_multi_line_replies(reply: bytes) -> None:
    with pytest.raises(RedisProtocolError):
        ReplyCounter().feed(reply)
