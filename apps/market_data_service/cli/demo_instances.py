"""``market-data demo --instances 2``: leader election live (docs/leadership.md).

Starts a private ``redis-server``, the simulator (one connection per key, as Alpaca's
plans allow) and N ``market-data serve`` processes with ``LEADER_ELECTION=redis`` on
consecutive ports. The table shows each instance's role and epoch, and the prices with
the epoch that wrote them. Every ``--kill-every`` seconds the leader is killed with
SIGKILL and started again a moment later: the standby takes over within about two
seconds, the prices go on under a new epoch, and the killed one comes back as standby.
Ctrl-C stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from apps.market_data_service.cli.demo_shell import demo_symbols, run_demo, stop_on_signals
from apps.market_data_service.cli.instances import spawn_instance, stop_instances
from apps.simulator import AlpacaSimulator, SimulatorConfig
from libs.redis_client import RedisClient
from libs.redis_embedded import EmbeddedRedis

__all__ = ["run"]

_START_WAIT = 30.0  # seconds an instance may take to answer /health


@dataclass
class _Instance:
    name: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    health: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def run(args: argparse.Namespace) -> int:
    return run_demo(_demo, args)


def _spawn(instance: _Instance, sim: AlpacaSimulator, redis: EmbeddedRedis, log: Path) -> None:
    instance.process = spawn_instance(instance.name, instance.port, sim, redis, log)


async def _poll(instances: list[_Instance], http: httpx.AsyncClient) -> None:
    async def one(instance: _Instance) -> None:
        try:
            instance.health = (await http.get(f"{instance.base}/health", timeout=1.0)).json()
        except (httpx.HTTPError, ValueError):
            instance.health = {}

    await asyncio.gather(*(one(i) for i in instances))


async def _demo(args: argparse.Namespace) -> int:
    console = Console(soft_wrap=True)
    symbols = demo_symbols(args)
    if symbols is None:
        return 2
    stop = stop_on_signals()
    console.print(
        f"[bold]market-data demo --instances {args.instances}[/]: a private Redis, "
        "the simulator (1 connection per key) and the instances ..."
    )
    instances = [_Instance(f"demo-{n + 1}", args.port + n) for n in range(args.instances)]
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    async with EmbeddedRedis() as redis, AlpacaSimulator(
        SimulatorConfig(port=0, rate=args.rate, batch_size=10, connection_limit=1)
    ) as sim:  # fmt: skip
        for instance in instances:
            _spawn(instance, sim, redis, logs / f"market-data-{instance.name}.log")
        client = RedisClient(params=redis.params)
        try:
            async with httpx.AsyncClient(timeout=5) as http:
                if not await _subscribed(instances, http, symbols, console):
                    return 1
                console.print(
                    "instances: "
                    + "  ".join(f"{i.name} {i.base}/health" for i in instances)
                    + f"\nprices: {instances[0].base}/api/v1/prices (any instance answers)"
                    f"\nlogs: {logs}/market-data-demo-*.log  Ctrl-C to stop"
                )
                stage = _Stage(console, instances, http, client, symbols, sim, redis, logs)
                await _show(stage, stop, args)
        finally:
            await client.close()
            await stop_instances((i.process for i in instances if i.process is not None), 15)
    console.print("stopped: instances, simulator and Redis are down.")
    return 0


async def _subscribed(
    instances: list[_Instance], http: httpx.AsyncClient, symbols: list[str], console: Console
) -> bool:
    """Wait for a leader, then subscribe through it: any instance would do once it
    listens, and the leader is the one known to."""
    deadline = time.monotonic() + _START_WAIT
    while not any(i.health.get("role") == "leader" for i in instances):
        if time.monotonic() > deadline:
            console.print("[red]no instance became leader[/] (see the logs)")
            return False
        await asyncio.sleep(0.2)
        await _poll(instances, http)
    leader = next(i for i in instances if i.health.get("role") == "leader")
    reply = await http.post(f"{leader.base}/api/v1/subscribe", json={"symbols": symbols})
    if not reply.is_success:
        console.print(f"[red]subscribe failed[/]: {reply.status_code} {reply.text}")
        return False
    return True


@dataclass
class _Stage:
    """What the live table runs on."""

    console: Console
    instances: list[_Instance]
    http: httpx.AsyncClient
    client: RedisClient
    symbols: list[str]
    sim: AlpacaSimulator
    redis: EmbeddedRedis
    logs: Path


async def _show(stage: _Stage, stop: asyncio.Event, args: argparse.Namespace) -> None:
    instances, http, symbols = stage.instances, stage.http, stage.symbols
    started = time.monotonic()
    next_kill = started + args.kill_every
    history: list[str] = []
    restart: tuple[float, _Instance] | None = None
    with Live(console=stage.console, refresh_per_second=8, transient=False) as live:
        while not stop.is_set():
            now = time.monotonic()
            if args.duration is not None and now - started > args.duration:
                break
            await _poll(instances, http)
            leader = next((i for i in instances if i.health.get("role") == "leader"), None)
            if leader is not None and leader.process is not None and now >= next_kill:
                leader.process.kill()
                history.append(f"{time.strftime('%H:%M:%S')} kill -9 {leader.name} (leader)")
                restart = (now + 3.0, leader)
                next_kill = now + args.kill_every
            if restart is not None and now >= restart[0]:
                log = stage.logs / f"market-data-{restart[1].name}.log"
                _spawn(restart[1], stage.sim, stage.redis, log)
                history.append(f"{time.strftime('%H:%M:%S')} {restart[1].name} started again")
                restart = None
            raws = await stage.client.mget([f"price:{s}" for s in symbols])
            live.update(_render(instances, symbols, raws, history))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.25):
                    await stop.wait()


def _render(
    instances: list[_Instance], symbols: list[str], raws: list[bytes | None], history: list[str]
) -> Group:
    roles = Table(title="instances", title_justify="left")
    for column in ("instance", "port", "role", "status", "epoch", "lease left", "leader"):
        roles.add_column(column)
    for instance in instances:
        body = instance.health
        lead = body.get("leadership") or {}
        role = body.get("role", "down")
        style = {"leader": "bold green", "standby": "yellow"}.get(role, "red")
        remaining = lead.get("lease_remaining_seconds")
        roles.add_row(
            instance.name,
            str(instance.port),
            f"[{style}]{role}[/]",
            body.get("status", "-"),
            str(lead.get("epoch", "-")),
            "-" if remaining is None else f"{remaining:.2f}s",
            str(lead.get("leader_id") or "-"),
        )
    prices = Table(title="prices (price:{SYMBOL})", title_justify="left")
    for column in ("symbol", "bid", "ask", "mid", "seq", "epoch"):
        prices.add_column(column, justify="right")
    for symbol, raw in zip(symbols, raws, strict=True):
        if raw is None:
            prices.add_row(symbol, "-", "-", "-", "-", "-")
            continue
        record = msgspec.json.decode(raw)
        prices.add_row(
            symbol,
            record["bid"],
            record["ask"],
            record["mid"],
            str(record["seq"]),
            str(record["epoch"]),
        )
    return Group(roles, prices, *history[-6:])
