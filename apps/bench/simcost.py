"""The simulator's own cost at full speed: its process's CPU per quote sent.

The simulator shares the benchmark's machine with the service, so every microsecond
it spends generating a quote is one the service cannot use. This runs it alone in its
process (as ``market-data bench`` does), with one WebSocket reader here that discards
frames, at a rate above what it can send (the socket's backpressure paces it), for
100 symbols and for ``*`` (the 10,000-symbol Zipf-skewed universe of the whole-market
scenario), and prints the simulator's CPU seconds over the quotes it sent.

Run: ``python -m apps.bench.simcost [--duration S] [--batch N]``. Prints figures,
asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from dataclasses import dataclass

from websockets.asyncio.client import connect

from apps.bench.processes import Peer, bench_config, simulator_main
from apps.bench.service import process_cpu
from libs.tasks import cancel_and_wait

__all__ = ["SimCost", "main", "measure_simulator"]

FULL_SPEED = 20_000_000.0  # quotes/s offered: more than it can send, so it runs flat out


@dataclass(frozen=True)
class SimCost:
    symbols: str
    quotes_per_s: float
    cpu_us_per_quote: float


async def _drain(url: str, symbols: list[str], stop: asyncio.Event) -> None:
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.recv()  # connected
        await ws.send(json.dumps({"action": "auth", "key": "bench-key", "secret": "bench-secret"}))
        await ws.recv()
        await ws.send(json.dumps({"action": "subscribe", "quotes": symbols}))
        try:
            while not stop.is_set():
                await ws.recv(decode=False)
        finally:
            # No closing handshake: the simulator's reply would queue behind megabytes.
            ws.transport.abort()


async def measure_simulator(
    sim: Peer, port: int, symbols: list[str], duration: float, batch: int
) -> SimCost:
    """CPU per quote of the simulator process ``sim`` streaming ``symbols`` at full speed."""
    stop = asyncio.Event()
    reader = asyncio.create_task(_drain(f"ws://127.0.0.1:{port}/v2/sip", symbols, stop))
    try:
        await asyncio.sleep(0.5)  # authenticated and subscribed
        sim.tell(("rate", FULL_SPEED, batch))
        await asyncio.sleep(1.0)  # warmed up: the tape of the walk order is built
        sent_before = (await sim.ask(("stats",)))[1]
        cpu_before, wall_before = process_cpu(sim.process.pid or 0), time.monotonic()
        await asyncio.sleep(duration)
        sent = (await sim.ask(("stats",)))[1] - sent_before
        cpu = process_cpu(sim.process.pid or 0) - cpu_before
        wall = time.monotonic() - wall_before
    finally:
        sim.tell(("rate", 0.0, None))
        stop.set()
        await cancel_and_wait(reader, quiet=True)
    label = "*" if symbols == ["*"] else f"{len(symbols)} symbols"
    return SimCost(label, sent / wall, cpu / sent * 1e6 if sent else float("nan"))


async def _run(duration: float, batch: int) -> list[SimCost]:
    results = []
    for symbols in ([f"SYM{i:03d}" for i in range(100)], ["*"]):
        sim = Peer(simulator_main, bench_config())
        try:
            _, port = await sim.reply()
            results.append(await measure_simulator(sim, port, symbols, duration, batch))
        finally:
            sim.close()
    return results


def main(argv: list[str] | None = None) -> int:
    import uvloop

    parser = argparse.ArgumentParser(prog="simcost", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (5)")
    parser.add_argument("--batch", type=int, default=200, help="quotes per frame (200)")
    args = parser.parse_args(argv)
    for cost in uvloop.run(_run(args.duration, args.batch)):
        print(
            f"simulator, {cost.symbols:<12} batch {args.batch}: {cost.quotes_per_s:>10,.0f} "
            f"quotes/s sent, {cost.cpu_us_per_quote:.2f} µs CPU per quote",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
