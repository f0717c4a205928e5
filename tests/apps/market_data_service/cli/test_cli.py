"""The real ``market-data`` console script, run as a subprocess: configuration errors, the
demo (prices on stdout, nothing left running afterwards), the client commands."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx
import pytest

from apps.simulator import AlpacaSimulator
from libs.redis_client import RedisClient, RedisConnectionParams
from tests.fixtures.redis import closed_port, pid_alive, wait_pid_gone
from tests.helpers import eventually, quote

MARKET_DATA = str(Path(sys.executable).parent / "market-data")
SYMBOLS = ("AAPL", "MSFT", "GOOGL")
RUN_TIMEOUT = 30.0


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment without ALPACA_*/REDIS_*/MARKET_DATA_* (the binary override kept),
    plain output."""
    cleaned = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(("ALPACA_", "REDIS_", "MARKET_DATA_", "FORCE_COLOR"))
        or name == "REDIS_SERVER_BIN"
    }
    cleaned.update(PYTHONUNBUFFERED="1", NO_COLOR="1")
    return cleaned


def run(
    args: list[str], env: dict[str, str], cwd: Path, timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run ``market-data args``; ``subprocess.run`` kills it if the timeout passes."""
    return subprocess.run(
        [MARKET_DATA, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def children(pid: int) -> set[int]:
    """Pids whose parent is ``pid`` (from /proc)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            found.add(int(entry.name))
    return found


def cmdline(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


class Running:
    """A ``market-data`` process whose combined output is collected line by line."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [MARKET_DATA, *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_output(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait until the output matches ``pattern``; fail (with the output) otherwise."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.MULTILINE)
        with self._changed:
            while True:
                match = regex.search("\n".join(self.lines))
                if match is not None:
                    return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError(
                        f"no {pattern!r} in the output (exit {self.proc.poll()}):\n"
                        + "\n".join(self.lines)
                    )
                self._changed.wait(min(left, 0.1))

    def wait(self, timeout: float) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def redis_children(self) -> set[int]:
        return {pid for pid in children(self.proc.pid) if "redis-server" in cmdline(pid)}


@contextmanager
def running(args: list[str], env: dict[str, str], cwd: Path) -> Iterator[Running]:
    """Start ``market-data args``; on the way out it is killed if still running."""
    process = Running(args, env, cwd)
    try:
        yield process
    finally:
        if process.proc.poll() is None:
            process.proc.kill()
            process.proc.wait(timeout=10)
        if process.proc.stdout is not None:
            process.proc.stdout.close()


def assert_gone(pids: set[int]) -> None:
    left = {pid for pid in pids if not wait_pid_gone(pid, timeout=5)}
    assert not left, f"still running after the demo ended: {[cmdline(p) for p in left]}"


def price_lines(output: str) -> dict[str, list[str]]:
    """Every decimal price shown per demo symbol."""
    return {s: re.findall(rf"\b{s} (\d+\.\d+)\b", output) for s in SYMBOLS}


# -- help and configuration errors ------------------------------------------------------------


def test_help_lists_the_commands(env: dict[str, str], tmp_path: Path) -> None:
    result = run(["--help"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "sim", "demo", "health", "subscriptions", "subscribe", "unsubscribe"):
        assert re.search(rf"^\s+{command}\b", result.stdout, re.MULTILINE), command


@pytest.mark.parametrize(
    "command", ["health", "subscriptions", "subscribe", "unsubscribe", "status"]
)
def test_help_of_client_commands_documents_exit_codes_and_the_key(
    env: dict[str, str], tmp_path: Path, command: str
) -> None:
    result = run([command, "--help"], env, tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "exit status:" in text
    assert "0 done" in text and "1 the service refused" in text and "2 usage or input error" in text
    assert "--api-key" in text and "MARKET_DATA_API_KEY_FILE" in text


def test_an_api_that_is_no_url_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    result = run(["health", "--api", "localhost:8004"], env, tmp_path, timeout=20)
    assert result.returncode == 2
    assert "not an http:// or https:// URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_command_is_a_usage_error(env: dict[str, str], tmp_path: Path) -> None:
    result = run([], env, tmp_path)
    assert result.returncode == 2
    assert "usage: market-data" in result.stderr


def test_serve_without_keys_exits_2_naming_them(env: dict[str, str], tmp_path: Path) -> None:
    result = run(["serve"], env, tmp_path, timeout=20)
    assert result.returncode == 2
    assert "ALPACA_API_KEY" in result.stderr
    assert "ALPACA_SECRET_KEY" in result.stderr
    assert "make demo" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_bad_setting_exits_2_without_showing_the_secret(
    env: dict[str, str], tmp_path: Path
) -> None:
    secret = "cli-secret-value-0123456789"
    env.update(ALPACA_API_KEY="AKCLITEST", ALPACA_SECRET_KEY=secret, PRICE_CACHE_TTL="-1")
    result = run(["serve"], env, tmp_path, timeout=20)
    assert result.returncode == 2
    assert "PRICE_CACHE_TTL" in result.stderr
    assert secret not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_health_of_an_unreachable_service_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    api = f"http://127.0.0.1:{closed_port()}"
    result = run(["health", "--api", api], env, tmp_path, timeout=20)
    assert result.returncode == 1
    assert f"cannot reach the service at {api}" in result.stderr
    assert "Traceback" not in result.stderr


# -- the demo ----------------------------------------------------------------------------------


def test_demo_with_a_duration_shows_prices_and_leaves_nothing_behind(
    env: dict[str, str], tmp_path: Path
) -> None:
    port = closed_port()
    with running(["demo", "--duration", "3", "--port", str(port)], env, tmp_path) as demo:
        demo.wait_output(r"health: http://")
        redis = demo.redis_children()
        assert redis, "the demo runs a private redis-server"
        code = demo.wait(timeout=RUN_TIMEOUT)
    output = demo.output
    assert code == 0, output
    assert f"http://127.0.0.1:{port}/docs" in output
    assert f"http://127.0.0.1:{port}/health" in output
    prices = price_lines(output)
    assert all(prices.values()), f"a price for each symbol expected:\n{output}"
    assert "Traceback" not in output
    assert_gone(redis)


def test_demo_stops_on_sigint_and_leaves_no_redis(env: dict[str, str], tmp_path: Path) -> None:
    port = closed_port()
    with running(["demo", "--port", str(port)], env, tmp_path) as demo:
        for symbol in SYMBOLS:
            demo.wait_output(rf"\b{symbol} \d+\.\d+")
        redis = demo.redis_children()
        assert redis
        demo.proc.send_signal(signal.SIGINT)
        code = demo.wait(timeout=10)
    assert code == 0, demo.output
    assert "stopped" in demo.output
    assert "Traceback" not in demo.output
    assert_gone(redis)


def test_client_commands_against_the_demo(env: dict[str, str], tmp_path: Path) -> None:
    port = closed_port()
    api = f"http://127.0.0.1:{port}"
    with running(["demo", "--port", str(port)], env, tmp_path) as demo:
        demo.wait_output(r"\bAAPL \d+\.\d+")
        redis = demo.redis_children()

        health = run(["health", "--json", "--api", api], env, tmp_path)
        assert health.returncode == 0, health.stderr
        assert json.loads(health.stdout)["status"] == "healthy"
        health = run(["health", "--api", api], env, tmp_path)
        assert health.returncode == 0, health.stderr
        assert re.search(r"status\s*│\s*healthy", health.stdout), health.stdout

        subscribed = run(["subscribe", "tsla", "--api", api], env, tmp_path)
        assert subscribed.returncode == 0, subscribed.stderr
        assert subscribed.stdout == "subscribed TSLA (4 subscriptions in total)\n"

        listed = run(["subscriptions", "--api", api], env, tmp_path)
        assert listed.returncode == 0
        assert re.search(r"TSLA\s*│\s*manual\s*│", listed.stdout), listed.stdout
        assert re.search(r"AAPL\s*│\s*manual, positions\s*│", listed.stdout), listed.stdout
        listed = run(["subscriptions", "--json", "--api", api], env, tmp_path)
        assert listed.returncode == 0
        assert json.loads(listed.stdout) == {
            "symbols": ["AAPL", "GOOGL", "MSFT", "TSLA"],
            "count": 4,
            # The demo account holds AAPL, MSFT and GOOGL: the positions sync follows them.
            "sources": {
                **{s: ["manual", "positions"] for s in ("AAPL", "GOOGL", "MSFT")},
                "TSLA": ["manual"],
            },
        }

        missing = run(["unsubscribe", "NVDA", "--api", api], env, tmp_path)
        assert missing.returncode == 1
        assert missing.stdout == ""
        assert missing.stderr.count("\n") == 1 and "NVDA" in missing.stderr

        unsubscribed = run(["unsubscribe", "tsla", "--api", api], env, tmp_path)
        assert unsubscribed.returncode == 0, unsubscribed.stderr
        assert unsubscribed.stdout == "unsubscribed TSLA (3 subscriptions left)\n"

        demo.proc.send_signal(signal.SIGTERM)
        code = demo.wait(timeout=10)
    assert code == 0, demo.output
    assert_gone(redis)


def test_demo_positions_follow_its_symbols(env: dict[str, str], tmp_path: Path) -> None:
    port = closed_port()
    api = f"http://127.0.0.1:{port}"
    with running(["demo", "--symbols", "tsla", "NVDA", "--port", str(port)], env, tmp_path) as demo:
        demo.wait_output(r"\bTSLA \d+\.\d+.*\bNVDA \d+\.\d+.*P&L -?\d", timeout=30)
        status = run(["status", "--api", api], env, tmp_path)
        demo.proc.send_signal(signal.SIGTERM)
        code = demo.wait(timeout=10)
    assert code == 0, demo.output
    # (Its exit code is not the point: a busy machine may catch the demo degraded.)
    assert "Real-time P&L" in status.stdout, status.stdout + status.stderr
    pnl = status.stdout[status.stdout.index("Real-time P&L") :]
    assert re.search(r"TSLA\s*│\s*long\s*│\s*100\s*│", pnl), pnl
    assert re.search(r"NVDA\s*│\s*short\s*│\s*-50\s*│", pnl), pnl
    assert "AAPL" not in status.stdout and "MSFT" not in status.stdout
    assert "AAPL" not in demo.output


def test_demo_with_a_bad_symbol_exits_2_before_starting(
    env: dict[str, str], tmp_path: Path
) -> None:
    result = run(["demo", "--symbols", "AAPL", "*", "--port", str(closed_port())], env, tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "'*'" in result.stderr
    assert "starting" not in result.stdout


def test_demo_on_a_port_in_use_exits_1_with_a_message(env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with running(["demo", "--duration", "3", "--port", str(port)], env, tmp_path) as demo:
            demo.wait_output(r"starting a private Redis")
            redis = demo.redis_children()
            code = demo.wait(timeout=RUN_TIMEOUT)
    assert code == 1, demo.output
    assert f"could not start the service on 127.0.0.1:{port}" in demo.output
    assert "Traceback" not in demo.output
    assert_gone(redis)


# -- serve against the simulator -----------------------------------------------------------------


@asynccontextmanager
async def serving(
    env: dict[str, str], cwd: Path, port: int
) -> AsyncIterator[asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        MARKET_DATA,
        "serve",
        "--port",
        str(port),
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_serve_runs_the_service_and_stops_on_sigint(
    env: dict[str, str],
    tmp_path: Path,
    simulator: AlpacaSimulator,
    redis_params: RedisConnectionParams,
) -> None:
    port = closed_port()
    env.update(
        ALPACA_API_KEY="sim-key",
        ALPACA_SECRET_KEY="sim-secret",
        ALPACA_DATA_URL=simulator.url(),
        REDIS_HOST=redis_params.host,
        REDIS_PORT=str(redis_params.port),
        RECONNECT_BASE_DELAY="0.05",
        RECONNECT_MAX_DELAY="0.2",
    )
    async with (
        serving(env, tmp_path, port) as proc,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http,
    ):
        deadline = time.monotonic() + 20
        while True:
            assert proc.returncode is None, "market-data serve exited early"
            try:
                health = (await http.get("/health")).json()
            except httpx.TransportError:
                health = {}
            if health.get("status") == "healthy":
                break
            assert time.monotonic() < deadline, f"never healthy: {health}"
            await asyncio.sleep(0.1)
        reply = await http.post("/api/v1/subscribe", json={"symbols": ["aapl"]})
        assert reply.status_code == 201
        await simulator.send_quotes([quote("AAPL", "187.25", "187.27")])
        client = RedisClient(params=redis_params)
        try:
            deadline = time.monotonic() + 5
            while (raw := await client.get("price:AAPL")) is None:
                assert time.monotonic() < deadline, "price:AAPL never written"
                await asyncio.sleep(0.02)
        finally:
            await client.close()
        assert json.loads(raw)["mid"] == "187.26"

        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(10):
            code = await proc.wait()
        assert proc.stdout is not None
        output = (await proc.stdout.read()).decode()
    assert code == 0, output
    assert "sim-secret" not in output
    assert not pid_alive(proc.pid)
    await eventually(lambda: simulator.open_connections == 0, what="the socket closed")
