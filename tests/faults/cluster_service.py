"""``market-data serve`` as its own process on a Redis Cluster, the way a user runs it
(``REDIS_CLUSTER_NODES``, docs/cluster.md), for the cluster service tests.

The process streams from the simulator and asks it for positions and closes (its REST
API), logs to a file under the test's directory (a pipe nobody reads would fill up and
stall it), and is shown with its log when a wait fails. ``read`` takes a symbol's record
from one given node, so a test can read the shards that are up while another is paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import redis
from redis.crc import key_slot

from apps.simulator import AlpacaSimulator
from libs.market_data.keys import KeySpace
from libs.redis_embedded.cluster import EmbeddedRedisCluster
from libs.redis_embedded.cluster_node import ClusterNodeProcess
from tests.faults.harness import free_port

__all__ = [
    "KEYS",
    "ServeProcess",
    "expected_mid",
    "mid_on",
    "owners",
    "read",
    "seq_on",
    "serve_on_cluster",
]

KEYS = KeySpace(cluster=True)
_DEADLINE = 20.0  # seconds: safety nets for a loaded machine, not assertions

Body = dict[str, Any]


@dataclass
class ServeProcess:
    """One ``market-data serve`` process and an HTTP client on it."""

    process: subprocess.Popen[bytes]
    log: Path
    http: httpx.AsyncClient

    @property
    def url(self) -> str:
        return str(self.http.base_url).rstrip("/")

    async def health(self) -> Body | None:
        """``/health``'s body, or None while it does not answer."""
        try:
            reply = await self.http.get("/health", timeout=2.0)
        except httpx.HTTPError:
            return None
        body: Body = reply.json()
        return body

    async def wait_health(
        self, predicate: Callable[[Body], bool], what: str, within: float = _DEADLINE
    ) -> Body:
        """Poll ``/health`` until ``predicate`` holds on its body; that body."""
        deadline = asyncio.get_running_loop().time() + within
        body: Body | None = None
        while True:
            body = await self.health()
            if body is not None and predicate(body):
                return body
            assert self.process.poll() is None, f"the service exited\n{self.logs()}"
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {body}\n{self.logs()}")
            await asyncio.sleep(0.05)

    async def get(self, path: str) -> Any:
        """GET ``path``, which must answer 200; its JSON body."""
        reply = await self.http.get(path)
        assert reply.status_code == 200, f"{path}: {reply.status_code} {reply.text}"
        return reply.json()

    def logs(self, tail: int = 60) -> str:
        lines = self.log.read_text(errors="replace").splitlines()[-tail:]
        return "--- market-data serve ---\n" + "\n".join(lines)

    async def stop(self) -> None:
        """SIGTERM (as a user's Ctrl-C or an orchestrator would), SIGKILL if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(self.process.wait, _DEADLINE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            await asyncio.to_thread(self.process.wait, _DEADLINE)
        await self.http.aclose()


@contextlib.asynccontextmanager
async def serve_on_cluster(
    sim: AlpacaSimulator, cluster: EmbeddedRedisCluster, directory: Path, **env: str
) -> AsyncIterator[ServeProcess]:
    """``market-data serve`` on ``cluster`` and ``sim`` (positions and closes from its
    REST API) until the block ends, healthy before the block starts."""
    port = free_port()
    environment = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("ALPACA_", "REDIS_", "MARKET_DATA_"))
        },
        "ALPACA_API_KEY": sim.config.api_key,
        "ALPACA_SECRET_KEY": sim.config.secret_key,
        "ALPACA_DATA_URL": sim.url(),
        "ALPACA_BASE_URL": sim.http_url(),
        "ALPACA_DATA_BASE_URL": sim.http_url(),
        # No REST gap fill: what the cache holds must come through the stream and the
        # shard sinks, or a test of held updates would pass on the REST copy.
        "GAP_FILL": "false",
        "POSITION_SYNC_INTERVAL": "0.2",
        "RECONNECT_BASE_DELAY": "0.1",
        "RECONNECT_MAX_DELAY": "0.5",
        "REDIS_CLUSTER_NODES": cluster.nodes_spec,
        "PORT": str(port),
        **env,
    }
    log = directory / f"serve-{port}.log"
    process = _launch(environment, directory, log)
    running = ServeProcess(
        process, log, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10)
    )
    try:
        await running.wait_health(lambda b: b["status"] == "healthy", "a healthy service")
        yield running
    finally:
        await running.stop()


def _launch(environment: dict[str, str], directory: Path, log: Path) -> subprocess.Popen[bytes]:
    command = [str(Path(sys.executable).parent / "market-data"), "serve"]
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=environment, cwd=directory, stdout=out, stderr=subprocess.STDOUT
        )


def owners(cluster: EmbeddedRedisCluster, symbols: list[str]) -> dict[str, ClusterNodeProcess]:
    """The primary that owns each symbol's slot now."""
    return {s: cluster.owner_of(key_slot(KEYS.price_key(s).encode())) for s in symbols}


def read(node: ClusterNodeProcess, symbol: str) -> Body | None:
    """``price:{S}`` as ``node`` holds it, parsed (None: not there)."""
    with redis.Redis(**node.params.redis_kwargs()) as client:
        raw = client.get(KEYS.price_key(symbol))
    return None if raw is None else dict(json.loads(raw))


def mid_on(node: ClusterNodeProcess, symbol: str) -> Decimal | None:
    """The mid of ``price:{S}`` on ``node`` (None: not there)."""
    record = read(node, symbol)
    return None if record is None else Decimal(record["mid"])


def seq_on(node: ClusterNodeProcess, symbol: str) -> int:
    """The ``seq`` of ``price:{S}`` on ``node`` (-1: not there)."""
    record = read(node, symbol)
    return -1 if record is None else int(record["seq"])


def expected_mid(sim: AlpacaSimulator, symbol: str) -> Decimal | None:
    """The mid of the last quote the simulator sent for ``symbol``."""
    last = sim.last_quotes.get(symbol)
    return None if last is None else (Decimal(str(last["bp"])) + Decimal(str(last["ap"]))) / 2
