"""``market-data serve`` instances as child processes, on a simulator and a private Redis.

The leader-election demo (cli/demo_instances.py) and the failover drill
(apps/bench/failover.py) run several instances electing a leader, kill them, start
them again, and stop them at the end the same way; the fan-out bench takes a free
port from here too.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from apps.simulator import AlpacaSimulator
from libs.redis_embedded import EmbeddedRedis

__all__ = ["free_port", "spawn_instance", "stop_instances"]


def free_port() -> int:
    """A loopback port nobody listens on now (the OS's pick)."""
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def spawn_instance(
    name: str, port: int, sim: AlpacaSimulator, redis: EmbeddedRedis, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``market-data serve`` as INSTANCE_ID ``name`` on ``port`` with
    LEADER_ELECTION=redis, its output appended to ``log``."""
    env = {
        # Settings of the caller's own environment would point it elsewhere.
        **{k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "REDIS_"))},
        "ALPACA_API_KEY": sim.config.api_key,
        "ALPACA_SECRET_KEY": sim.config.secret_key,
        "ALPACA_DATA_URL": sim.url(),
        "REDIS_HOST": redis.host,
        "REDIS_PORT": str(redis.port),
        "PORT": str(port),
        "LEADER_ELECTION": "redis",
        "INSTANCE_ID": name,
        "LOG_LEVEL": "WARNING",
    }
    command = [str(Path(sys.executable).parent / "market-data"), "serve"]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


async def stop_instances(
    processes: Iterable[subprocess.Popen[bytes]], timeout: float = 30.0
) -> None:
    """SIGTERM every running one at once (a graceful stop each), then wait for each;
    one still running after ``timeout`` is killed."""
    processes = list(processes)
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(process.wait, timeout)
        if process.poll() is None:
            process.kill()
