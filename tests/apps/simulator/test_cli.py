"""The command-line entry: options map onto SimulatorConfig; the process serves until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from apps.simulator import SimulatorConfig
from apps.simulator.cli import add_arguments, config_from_args
from tests.fixtures.simulator import recv_frame

PROJECT_ROOT = Path(__file__).resolve().parents[3]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


def test_defaults_are_the_config_defaults() -> None:
    assert config_from_args(parse()) == SimulatorConfig()


def test_options_map_onto_the_config() -> None:
    args = parse(
        "--host=0.0.0.0",
        "--port=0",
        "--api-key=k",
        "--secret-key=s",
        "--rate=1000",
        "--batch-size=200",
        "--seed=5",
        "--connection-limit=0",
        "--symbol-limit=30",
        "--auth-timeout=2.5",
        "--no-compression",
    )
    assert config_from_args(args) == SimulatorConfig(
        host="0.0.0.0",
        port=0,
        api_key="k",
        secret_key="s",
        rate=1000,
        batch_size=200,
        seed=5,
        connection_limit=None,
        symbol_limit=30,
        auth_timeout=2.5,
        compression=False,
    )


def test_connection_release_delay_maps_onto_the_config() -> None:
    args = parse("--connection-limit=2", "--connection-release-delay=1.5")
    config = config_from_args(args)
    assert (config.connection_limit, config.connection_release_delay) == (2, 1.5)
    with pytest.raises(ValueError, match="connection_release_delay"):
        config_from_args(parse("--connection-release-delay=-1"))


def test_negative_limits_are_refused() -> None:
    with pytest.raises(SystemExit):
        parse("--connection-limit=-1")


async def test_run_serves_until_sigterm() -> None:
    code = (
        "import argparse, sys\n"
        "from apps.simulator.cli import add_arguments, run\n"
        "parser = argparse.ArgumentParser()\n"
        "add_arguments(parser)\n"
        "sys.exit(run(parser.parse_args(sys.argv[1:])))\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        "--port=0",
        "--rate=0",
        stderr=asyncio.subprocess.PIPE,
        cwd=PROJECT_ROOT,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(20):
            while not (
                match := re.search(
                    rb"ws://127\.0\.0\.1:(\d+)/v2/iex", await process.stderr.readline()
                )
            ):
                pass
        url = match.group(0).decode()
        async with connect(url) as ws:
            assert await recv_frame(ws) == [{"T": "success", "msg": "connected"}]
            await ws.send('{"action":"auth","key":"sim-key","secret":"sim-secret"}')
            assert await recv_frame(ws) == [{"T": "success", "msg": "authenticated"}]
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def test_sim_command_refuses_a_bad_positions_file(tmp_path: Path) -> None:
    path = tmp_path / "positions.json"
    path.write_text('[{"symbol": "AAPL", "qty": "x", "avg_entry_price": "1"}]')
    market_data = str(Path(sys.executable).parent / "market-data")
    result = subprocess.run(
        [market_data, "sim", "--port", "0", "--positions", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "positions file" in result.stderr and "not a decimal" in result.stderr
    assert "Traceback" not in result.stderr
