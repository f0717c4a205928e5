"""EmbeddedRedis lifecycle, with both a system and the bundled binary."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from libs.redis_client import RedisClient, RedisClientError
from libs.redis_embedded import EmbeddedRedis
from tests.fixtures.redis import RedisFactory, pid_alive, wait_pid_gone
from tests.libs.redis_embedded.support import NO_RETRY, bundled, ping, system

__all__: list[str] = []

# The bundled binary always; a system one too where the machine has it (CI does).
BINARIES = ["bundled"] + (["system"] if system() is not None else [])


def _version_of(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("v=", 1)[1].split()[0]


# --- both binaries ------------------------------------------------------------------


@pytest.mark.parametrize("which", BINARIES)
def test_runs_with_each_binary(which: str, redis_factory: RedisFactory) -> None:
    binary = (system() if which == "system" else None) or bundled()
    server = redis_factory(binary=binary)
    with redis.Redis(**server.params.redis_kwargs()) as client:
        assert client.info("server")["redis_version"] == _version_of(binary)
        client.set("k", "v")
        assert client.get("k") == b"v"
        assert client.config_get("save")["save"] == ""
        assert client.config_get("appendonly")["appendonly"] == "no"
    pid = server.pid
    assert pid is not None
    server.stop()
    assert wait_pid_gone(pid)


@pytest.mark.parametrize("which", BINARIES)
def test_unix_socket_and_password_with_each_binary(which: str, redis_factory: RedisFactory) -> None:
    binary = (system() if which == "system" else None) or bundled()
    # Quotes, a backslash and a space exercise the config-file escaping on each version.
    server = redis_factory(binary=binary, unix_socket=True, password='p w"\\x')
    assert server.port == 0
    assert ping(server)


# --- lifecycle ----------------------------------------------------------------------


def test_start_stop_leaves_nothing_behind() -> None:
    server = EmbeddedRedis()
    server.start()
    pid, log_path = server.pid, server.log_path
    assert pid is not None and log_path is not None
    assert server.running and pid_alive(pid)
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert ping(server)
    server.stop()
    assert not server.running and server.pid is None
    assert wait_pid_gone(pid)
    assert not log_path.parent.exists()
    server.stop()  # idempotent


def test_context_manager() -> None:
    with EmbeddedRedis() as server:
        pid = server.pid
        assert pid is not None and ping(server)
    assert wait_pid_gone(pid)


async def test_async_context_manager() -> None:
    async with EmbeddedRedis() as server:
        pid = server.pid
        assert pid is not None
        async with RedisClient(params=server.params) as client:
            await client.setex("price:AAPL", 300, "x")
            assert await client.get("price:AAPL") == b"x"
    assert wait_pid_gone(pid)


def test_start_twice_is_an_error(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    with pytest.raises(RedisClientError, match="already running"):
        server.start()


def test_port_before_start_is_an_error() -> None:
    with pytest.raises(RedisClientError, match="start"):
        _ = EmbeddedRedis().port


def test_kill_then_restart_on_the_same_port(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    port, first_pid = server.port, server.pid
    assert first_pid is not None
    server.kill()
    assert not server.running
    assert wait_pid_gone(first_pid)
    with pytest.raises(redis.exceptions.ConnectionError):
        ping(server)
    server.restart()
    assert server.port == port
    assert server.pid != first_pid
    assert ping(server)


def test_restart_while_running(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    port, first_pid = server.port, server.pid
    assert first_pid is not None
    server.restart()
    assert server.port == port and server.pid != first_pid
    assert wait_pid_gone(first_pid)
    assert ping(server)


def test_fixed_port(redis_factory: RedisFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = redis_factory(port=port)
    assert server.port == port and ping(server)


def test_port_in_use_fails_with_the_log_tail(redis_factory: RedisFactory) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        server = redis_factory(port=taken.getsockname()[1], start=False)
        with pytest.raises(RedisClientError, match=r"(?i)address already in use"):
            server.start()
    assert not server.running
    assert server.log_path is None  # temp dir removed


def test_binary_that_exits_fails_fast(redis_factory: RedisFactory, tmp_path: Path) -> None:
    broken = tmp_path / "redis-server"
    broken.write_text("#!/bin/sh\necho 'cannot start: simulated' >&2\nexit 3\n")
    broken.chmod(0o755)
    server = redis_factory(binary=str(broken), start=False)
    started = time.monotonic()
    with pytest.raises(RedisClientError, match="simulated"):
        server.start()
    assert time.monotonic() - started < 3


def test_unix_socket_mode(redis_factory: RedisFactory) -> None:
    server = redis_factory(unix_socket=True)
    path = server.unix_socket_path
    assert path is not None
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o700
    assert server.url == f"unix://{path}"
    assert ping(server)
    server.kill()
    server.restart()
    assert server.unix_socket_path == path and ping(server)


def test_password_mode(redis_factory: RedisFactory) -> None:
    server = redis_factory(password='pa ss"word\\')
    assert ping(server)
    with (
        redis.Redis(host=server.host, port=server.port, retry=NO_RETRY) as anonymous,
        pytest.raises(redis.exceptions.AuthenticationError),
    ):
        anonymous.ping()
    assert "pa ss" not in repr(server) and "pa ss" not in server.params.redacted_url()
    if sys.platform.startswith("linux"):
        # Kept out of argv, where any local user could read it with ps.
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes()
        assert b"pa ss" not in cmdline
