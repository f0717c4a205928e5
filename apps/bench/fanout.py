"""``market-data bench --only fanout``: the live stream's fan-out, figures printed.

Topology, all on loopback, each part in its own process: the simulator (10,000 quotes/s
over 100 symbols) --> the service as users run it (``market-data serve``: stream,
Redis writes, and the stream hub) --> a private redis-server --> the hub --> 100
WebSocket clients, each on 10 of the 100 symbols (~100,000 client updates/s), in a
clients process. Reported per phase: delivered updates/s, p50/p99 from the quote's
exchange timestamp to receipt, updates lost (a ``seq`` jump) and coalesced, the
service's CPU (process CPU seconds / wall) and RSS. Phase two adds one client that
never reads (subscribed to every symbol) and reports its fate.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Final

import httpx
import redis

from apps.bench.fanout_clients import clients_main
from apps.bench.processes import Peer, simulator_main
from apps.bench.service import process_cpu, rss_mb, start_service, wait_healthy
from apps.bench.stats import latency_figures
from apps.market_data_service.cli.instances import free_port
from apps.simulator import SimulatorConfig
from libs.redis_embedded import EmbeddedRedis

__all__ = ["FanoutOptions", "run_fanout"]

_SYMBOLS: Final = [f"SYM{i:03d}" for i in range(100)]
_CLIENTS: Final = 100
_PER_CLIENT: Final = 10
_RATE: Final = 10_000.0
_BATCH: Final = 10  # quotes per simulator frame
_SAMPLE_EVERY: Final = 10


@dataclass(frozen=True)
class FanoutOptions:
    duration: float = 10.0


@dataclass
class Phase:
    name: str
    updates_per_s: float
    quotes_per_s: float
    p50_ms: float | None
    p99_ms: float | None
    lost: int
    coalesced: int
    cpu: float
    clients_cpu: float
    rss_mb: tuple[float, float, float]  # start, max, end


async def _measure(name: str, clients: Any, sim: Any, pid: int, duration: float) -> Phase:
    await clients.ask(("reset",))
    sent_before = (await sim.ask(("stats",)))[1]
    clients_pid = clients.process.pid
    clients_before = process_cpu(clients_pid)
    cpu_before, wall_before = process_cpu(pid), time.monotonic()
    rss = [rss_mb(pid)]
    while time.monotonic() - wall_before < duration:
        await asyncio.sleep(0.5)
        rss.append(rss_mb(pid))
    report = await clients.ask(("report",))
    wall = time.monotonic() - wall_before
    cpu = (process_cpu(pid) - cpu_before) / wall
    clients_cpu = (process_cpu(clients_pid) - clients_before) / wall
    sent = (await sim.ask(("stats",)))[1] - sent_before
    _, updates, lost, coalesced, _resyncs, latencies = report
    p50, p99, _ = latency_figures(sorted(latencies))
    return Phase(name, updates / wall, sent / wall, p50, p99, lost, coalesced, cpu,
                 clients_cpu, (rss[0], max(rss), rss[-1]))  # fmt: skip


def _latest_delivered(clients_last: list[dict[str, Any]], plan: list[list[str]],
                      redis_server: EmbeddedRedis) -> tuple[int, int]:  # fmt: skip
    """(client-symbol pairs holding the cached seq, pairs in all)."""
    import json

    with redis.Redis(**redis_server.params.redis_kwargs()) as client:
        raws = client.mget([f"price:{s}" for s in _SYMBOLS])
    cached = {s: json.loads(raw) for s, raw in zip(_SYMBOLS, raws, strict=True) if raw}
    good = total = 0
    for last, symbols in zip(clients_last, plan, strict=True):
        for symbol in symbols:
            total += 1
            want = cached.get(symbol)
            got = last.get(symbol)
            if want is not None and got is not None and tuple(got) == (want["epoch"], want["seq"]):
                good += 1
    return good, total


async def _drained(clients: Peer, plan: list[list[str]], redis_server: EmbeddedRedis,
                   patience: float = 30.0) -> tuple[int, int, float]:  # fmt: skip
    """Once the feed stopped: poll until every client holds each of its symbols' cached
    seq, or ``patience`` ran out; (pairs holding it, pairs in all, seconds it took)."""
    start = time.monotonic()
    while True:
        last = (await clients.ask(("last",)))[1]
        good, total = _latest_delivered(last, plan, redis_server)
        took = time.monotonic() - start
        if good == total or took > patience:
            return good, total, took
        await asyncio.sleep(0.2)


async def _fanout(options: FanoutOptions) -> list[str]:
    lines: list[str] = []
    plan = [[_SYMBOLS[(c * _PER_CLIENT + k) % len(_SYMBOLS)] for k in range(_PER_CLIENT)]
            for c in range(_CLIENTS)]  # fmt: skip
    async with EmbeddedRedis() as redis_server:
        sim = Peer(simulator_main, SimulatorConfig(
            port=0, rate=0.0, api_key="bench-key", secret_key="bench-secret",
            compression=False, connection_limit=None, seed=7))  # fmt: skip
        service: subprocess.Popen[bytes] | None = None
        clients: Any = None
        try:
            _, sim_port = await sim.reply()
            port = free_port()
            service = start_service(sim_port, redis_server, port)
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                await wait_healthy(http)
                reply = await http.post("/api/v1/subscribe", json={"symbols": _SYMBOLS})
                reply.raise_for_status()
            sim.tell(("rate", _RATE, _BATCH))
            await asyncio.sleep(1.0)  # every symbol has a price: snapshots are not null
            url = base.replace("http", "ws") + "/api/v1/stream"
            clients = Peer(clients_main, url, plan, _SAMPLE_EVERY)
            await clients.reply(90)  # all subscribed
            await asyncio.sleep(1.0)  # warm up
            print(f"running fanout: {_CLIENTS} clients ({options.duration:g}s) ...", flush=True)
            base_phase = await _measure("100 clients", clients, sim, service.pid, options.duration)
            clients.tell(("stall", _SYMBOLS))
            print("running fanout: + 1 client that never reads ...", flush=True)
            stalled_phase = await _measure("+1 stalled", clients, sim, service.pid,
                                           max(options.duration, 12.0))  # fmt: skip
            sim.tell(("rate", 0.0, None))
            good, total, drained = await _drained(clients, plan, redis_server)
            clients.tell(("unstall",))
            fate = await clients.reply(60)
        finally:
            sim.tell(("rate", 0.0, None))
            if clients is not None:
                clients.close()
            if service is not None:
                service.terminate()
                service.wait(30)
            sim.close()
    lines.append(_table([base_phase, stalled_phase]))
    lines.append("")
    lines.append(f"latest value delivered (client, symbol pairs holding the cached seq after "
                 f"the feed stopped): {good}/{total}, {drained:.1f}s after it stopped")  # fmt: skip
    _, code, reason, frames, _took = fate
    if code is None:
        lines.append(f"stalled client: still open ({frames} frames buffered for it)")
    elif code == 1006:  # docs/streaming.md, "Slow clients": the 1008 cannot reach it
        lines.append(f"stalled client: condemned (1008) and cut off by the service: it saw "
                     f"{frames} buffered frames, then the connection dropped (1006)")  # fmt: skip
    else:
        lines.append(f"stalled client: closed by the service with {code} {reason!r} "
                     f"(it read {frames} buffered frames before the close)")  # fmt: skip
    return lines


def _table(phases: list[Phase]) -> str:
    header = (f"{'phase':<13}{'quotes in/s':>12}{'updates/s':>11}{'p50 ms':>8}{'p99 ms':>8}"
              f"{'lost':>6}{'coalesced':>10}{'CPU':>6}{'clients CPU':>12}"
              f"{'RSS MB start/max/end':>22}")  # fmt: skip
    rows = [header, "-" * len(header)]

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    for p in phases:
        rss = "/".join(f"{v:.0f}" for v in p.rss_mb)
        rows.append(f"{p.name:<13}{p.quotes_per_s:>12,.0f}{p.updates_per_s:>11,.0f}"
                    f"{ms(p.p50_ms):>8}{ms(p.p99_ms):>8}{p.lost:>6}{p.coalesced:>10}"
                    f"{p.cpu:>6.2f}{p.clients_cpu:>12.2f}{rss:>22}")  # fmt: skip
    return "\n".join(rows)


def run_fanout(options: FanoutOptions) -> list[str]:
    """Run the fan-out bench; return the report's lines (also printed)."""
    import uvloop

    lines = uvloop.run(_fanout(options))
    print()
    print("\n".join(lines), flush=True)
    return lines
