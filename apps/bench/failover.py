"""The failover drill (``make failover-drill``): how long prices stop when the leader goes.

Two ``market-data serve`` processes with ``LEADER_ELECTION=redis`` and default settings
otherwise, on a private redis-server and the simulator (one connection per key, as
Alpaca's plans), streaming four symbols. Ten times the leader is killed with SIGKILL,
ten times stopped with SIGTERM; after each, the killed instance is started again as the
standby. For each failover it measures, with a real subscriber on ``price.updated.*``:

- the gap: from the last event of the old epoch to the first of the new one;
- connection attempts: sockets the simulator accepted until the new leader streamed.

It prints p50 and max of each; it asserts nothing (docs/leadership.md has the figures).
``--release-delay S`` makes the simulator keep a socket's slot S seconds after it died
without a closing handshake (a SIGKILL), as Alpaca does for a while: the new leader then
meets 406 and retries on its takeover schedule.
Run: ``python -m apps.bench.failover [--rounds N] [--release-delay S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx
import redis.asyncio

from apps.market_data_service.cli.instances import free_port, spawn_instance, stop_instances
from apps.simulator import AlpacaSimulator, SimulatorConfig
from libs.redis_embedded import EmbeddedRedis
from libs.tasks import cancel_and_wait

__all__ = ["main", "run_drill"]

SYMBOLS: Final = ["AAPL", "MSFT", "GOOGL", "TSLA"]
RATE: Final = 200.0  # quotes/s across the symbols
_WAIT: Final = 30.0  # seconds: a safety net per step


@dataclass
class _Instance:
    name: str
    port: int
    process: subprocess.Popen[bytes]

    async def health(self, http: httpx.AsyncClient) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = (await http.get(f"http://127.0.0.1:{self.port}/health")).json()
        except (httpx.HTTPError, ValueError):
            return None
        return body


@dataclass
class _Events:
    """Arrival time (monotonic) of the last event seen per epoch, and of the first."""

    first: dict[str, float] = field(default_factory=dict)
    last: dict[str, float] = field(default_factory=dict)

    def take(self, payload: bytes) -> None:
        epoch = str(json.loads(payload)["epoch"])
        now = time.monotonic()
        self.first.setdefault(epoch, now)
        self.last[epoch] = now


class _Drill:
    def __init__(self, sim: AlpacaSimulator, server: EmbeddedRedis, logs: Path) -> None:
        self.sim = sim
        self.server = server
        self.logs = logs
        self.http = httpx.AsyncClient(timeout=2.0)
        self.events = _Events()
        self.instances: list[_Instance] = []
        self._count = 0

    def spawn(self) -> _Instance:
        self._count += 1
        name = f"drill-{self._count}"
        port = free_port()
        process = spawn_instance(name, port, self.sim, self.server, self.logs / f"{name}.log")
        instance = _Instance(name, port, process)
        self.instances.append(instance)
        return instance

    async def wait_role(self, instance: _Instance, role: str) -> dict[str, Any]:
        deadline = time.monotonic() + _WAIT
        while True:
            body = await instance.health(self.http)
            if body is not None and body.get("role") == role and body["status"] == "healthy":
                return body
            if time.monotonic() > deadline or instance.process.poll() is not None:
                raise RuntimeError(f"{instance.name} never became a healthy {role}: {body}")
            await asyncio.sleep(0.02)

    async def wait_epoch(self, epoch: str) -> None:
        deadline = time.monotonic() + _WAIT
        while epoch not in self.events.first:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no event of epoch {epoch}")
            await asyncio.sleep(0.005)

    async def failover(self, leader: _Instance, standby: _Instance, how: int) -> tuple[float, int]:
        body = await self.wait_role(leader, "leader")
        old = str(body["leadership"]["epoch"])
        await self.wait_epoch(old)
        await asyncio.sleep(0.3)  # a steady stream before the cut
        accepted = self.sim.total_connections
        leader.process.send_signal(how)
        await asyncio.to_thread(leader.process.wait, _WAIT)
        self.instances.remove(leader)
        new = str((await self.wait_role(standby, "leader"))["leadership"]["epoch"])
        await self.wait_epoch(new)
        gap = self.events.first[new] - self.events.last[old]
        return gap, self.sim.total_connections - accepted

    async def close(self) -> None:
        await stop_instances((instance.process for instance in self.instances), _WAIT)
        await self.http.aclose()


async def _listen(server: EmbeddedRedis, events: _Events) -> None:
    client = redis.asyncio.Redis(**{**server.params.redis_kwargs(), "socket_timeout": None})
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    await pubsub.psubscribe("price.updated.*")
    try:
        async for message in pubsub.listen():
            if message["type"] == "pmessage":
                events.take(message["data"])
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


async def run_drill(
    rounds: int = 10, release_delay: float = 0.0
) -> dict[str, list[tuple[float, int]]]:
    """``rounds`` SIGKILL failovers, then ``rounds`` SIGTERM handovers: (gap, attempts)."""
    results: dict[str, list[tuple[float, int]]] = {"SIGKILL": [], "SIGTERM": []}
    server = await asyncio.to_thread(EmbeddedRedis().start)
    sim = AlpacaSimulator(
        SimulatorConfig(
            port=0, rate=0.0, connection_limit=1, connection_release_delay=release_delay
        )
    )
    await sim.start()
    with tempfile.TemporaryDirectory(prefix="failover-drill-") as logs:
        drill = _Drill(sim, server, Path(logs))
        listener = asyncio.create_task(_listen(server, drill.events))
        try:
            leader = drill.spawn()
            await drill.wait_role(leader, "leader")
            standby = drill.spawn()
            await drill.wait_role(standby, "standby")
            reply = await drill.http.post(
                f"http://127.0.0.1:{leader.port}/api/v1/subscribe", json={"symbols": SYMBOLS}
            )
            reply.raise_for_status()
            sim.set_rate(RATE, batch_size=5)
            for name, how in (("SIGKILL", signal.SIGKILL), ("SIGTERM", signal.SIGTERM)):
                for round_ in range(rounds):
                    gap, attempts = await drill.failover(leader, standby, how)
                    results[name].append((gap, attempts))
                    print(f"  {name} #{round_ + 1}: gap {gap:.3f}s, {attempts} connection(s)")
                    leader, standby = standby, drill.spawn()
                    await drill.wait_role(standby, "standby")
        finally:
            await cancel_and_wait(listener, quiet=True)
            await drill.close()
            await sim.stop()
            await asyncio.to_thread(server.stop)
    return results


def _summary(name: str, rows: list[tuple[float, int]]) -> str:
    gaps = sorted(g for g, _ in rows)
    attempts = [a for _, a in rows]
    return (
        f"{name:8} failovers={len(rows):2}  gap p50={statistics.median(gaps):.2f}s "
        f"max={gaps[-1]:.2f}s  connection attempts per failover "
        f"p50={statistics.median(attempts):g} max={max(attempts)}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="failover-drill", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="failovers per signal (10)")
    parser.add_argument(
        "--release-delay",
        type=float,
        default=0.0,
        help="seconds the simulator keeps a dead socket's slot (0: frees it at once)",
    )
    args = parser.parse_args(argv)
    if not (math.isfinite(args.release_delay) and args.release_delay >= 0):
        parser.error("--release-delay must be a number >= 0")
    print(
        f"failover drill: 2 instances, LEADER_LEASE_TTL default, {args.rounds} rounds per "
        f"signal, simulator release delay {args.release_delay:g}s"
    )
    results = asyncio.run(run_drill(args.rounds, args.release_delay))
    print(_summary("SIGKILL", results["SIGKILL"]))
    print(_summary("SIGTERM", results["SIGTERM"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
