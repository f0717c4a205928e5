"""The service as users run it, for the benchmarks: ``market-data serve`` in a child process.

Shared by ``market-data bench`` (apps/bench/served.py) and its fan-out part
(apps/bench/fanout.py): start the uvicorn app with its HTTP API on the simulator and a
private Redis, wait until it is healthy, and read its CPU time and RSS from ``/proc``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import httpx

from libs.redis_embedded import EmbeddedRedis

__all__ = ["process_cpu", "rss_mb", "start_service", "wait_healthy"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def rss_mb(pid: int) -> float:
    """A process's resident set size in MiB, from /proc."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def start_service(
    sim_port: int,
    redis_server: EmbeddedRedis,
    port: int,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """``market-data serve`` on ``port``, fed by the simulator on ``sim_port``, writing to
    ``redis_server`` (``extra_env`` adds settings: REDIS_CLUSTER_NODES, LEADER_ELECTION)."""
    sim_http = f"http://127.0.0.1:{sim_port}"
    env = {
        # Settings of the caller's own environment would point it elsewhere.
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ALPACA_", "REDIS_", "MARKET_", "LEADER_"))
        },
        "ALPACA_API_KEY": "bench-key",
        "ALPACA_SECRET_KEY": "bench-secret",
        "ALPACA_DATA_URL": f"ws://127.0.0.1:{sim_port}/v2/sip",
        "ALPACA_BASE_URL": sim_http,
        "ALPACA_DATA_BASE_URL": sim_http,
        "REDIS_HOST": redis_server.params.host,
        "REDIS_PORT": str(redis_server.params.port),
        "POSITION_SYNC_ENABLED": "false",
        "LOG_LEVEL": "WARNING",
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "apps.market_data_service.cli", "serve", "--port", str(port)]
    # A scratch directory: no stray .env; the project on the path for ``-m``.
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    return subprocess.Popen(command, env=env, cwd=tempfile.gettempdir())


async def wait_healthy(
    http: httpx.AsyncClient, process: subprocess.Popen[bytes] | None = None, timeout: float = 60
) -> None:
    """Until ``GET /health`` says ``healthy``; fails early if ``process`` exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the service exited with {process.returncode}")
        try:
            reply = await http.get("/health")
            if reply.status_code == 200 and reply.json()["status"] == "healthy":
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError("the service did not become healthy")
