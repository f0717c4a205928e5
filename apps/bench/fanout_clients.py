"""The fan-out bench's WebSocket clients, in a process of their own (``clients_main``).

Each client subscribes to its symbols on ``/api/v1/stream`` and, for every ``price``
message, checks the ``seq`` follows the last one of its symbol (a jump is a loss),
counts it, and keeps the latency (receipt - the quote's exchange timestamp) of every
``sample_every``-th. A stalled client subscribes to every symbol and never
reads. The parent steers the process over a pipe (commands in ``clients_main``).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from apps.bench.processes import parse_ns
from libs.tasks import cancel_and_wait

__all__ = ["ClientStats", "clients_main"]


class _Data(msgspec.Struct):
    symbol: str
    seq: int
    epoch: str
    timestamp: str


class _Message(msgspec.Struct):
    type: str
    data: _Data | None = None
    replaced: int = 0


_decode = msgspec.json.Decoder(list[_Message] | _Message).decode


@dataclass
class ClientStats:
    updates: int = 0
    lost: int = 0  # seq jumps within an epoch (coalescing, or a loss)
    coalesced: int = 0
    resyncs: int = 0
    last: dict[str, tuple[str, int]] = field(default_factory=dict)
    latencies: list[int] = field(default_factory=list)


class _Client:
    def __init__(self, symbols: list[str], sample_every: int) -> None:
        self.symbols = symbols
        self.stats = ClientStats()
        self.every = sample_every
        self.ws: ClientConnection | None = None
        self.ready = asyncio.Event()
        self.close: tuple[int | None, str] | None = None

    async def run(self, url: str) -> None:
        self.ws = ws = await connect(url, max_size=None, compression=None, open_timeout=30)
        await ws.send(msgspec.json.encode({"action": "subscribe", "symbols": self.symbols}))
        stats = self.stats
        try:
            async for raw in ws:
                now = time.time_ns()
                decoded = _decode(raw)
                for message in decoded if isinstance(decoded, list) else (decoded,):
                    data = message.data
                    if message.type == "price" and data is not None:
                        stats.updates += 1
                        before = stats.last.get(data.symbol)
                        if before is not None and before[0] == data.epoch:
                            stats.lost += max(0, data.seq - before[1] - 1)
                        stats.last[data.symbol] = (data.epoch, data.seq)
                        if stats.updates % self.every == 0:
                            stats.latencies.append(now - parse_ns(data.timestamp.encode()))
                    elif message.type == "snapshot" and data is not None:
                        stats.last[data.symbol] = (data.epoch, data.seq)
                    elif message.type == "subscriptions":
                        self.ready.set()
                    elif message.type == "coalesced":
                        stats.coalesced += message.replaced
                    elif message.type == "resync":
                        stats.resyncs += 1
        except ConnectionClosed:
            pass
        self.close = (ws.close_code, ws.close_reason or "")


async def _stalled(url: str, symbols: list[str]) -> ClientConnection:
    """A client that subscribes and then never reads (a frozen consumer process, the
    operating system's default socket buffers)."""
    ws = await connect(url, max_queue=1, compression=None, open_timeout=30)
    await ws.send(msgspec.json.encode({"action": "subscribe", "symbols": symbols}))
    return ws


def clients_main(conn: Connection, url: str, plan: list[list[str]], sample_every: int) -> None:
    """Run one client per symbol list of ``plan``. Commands:

    ("reset",) new measuring window; ("report",) -> ("report", updates, lost,
    coalesced, resyncs, latencies); ("last",) -> ("last", [{symbol: (epoch, seq)}]);
    ("stall", symbols) -> ("stalled",); ("unstall",) -> ("unstalled", code, reason);
    ("stop",).
    """
    import uvloop

    from apps.bench.processes import _serve_pipe

    async def main() -> None:
        clients = [_Client(symbols, sample_every) for symbols in plan]
        tasks = [asyncio.create_task(c.run(url)) for c in clients]
        async with asyncio.timeout(60):
            await asyncio.gather(*(c.ready.wait() for c in clients))
        conn.send(("ready", len(clients)))
        stalled: dict[str, Any] = {}

        def handle(message: tuple[Any, ...]) -> Any:
            if message[0] == "reset":
                for c in clients:
                    c.stats.updates = c.stats.lost = c.stats.coalesced = c.stats.resyncs = 0
                    c.stats.latencies = []
                return ("reset",)
            if message[0] == "report":
                s = [c.stats for c in clients]
                return ("report", sum(x.updates for x in s), sum(x.lost for x in s),
                        sum(x.coalesced for x in s), sum(x.resyncs for x in s),
                        [v for x in s for v in x.latencies])  # fmt: skip
            if message[0] == "last":
                return ("last", [dict(c.stats.last) for c in clients])
            if message[0] == "stall":
                stalled["task"] = asyncio.create_task(_stalled(url, message[1]))
                return None
            if message[0] == "unstall":
                stalled["reader"] = asyncio.create_task(_drain(stalled["task"].result()))
                return None
            return None

        done = _serve_pipe(conn, handle)
        await done.wait()
        await cancel_and_wait(*tasks, quiet=True)

    async def _drain(ws: ClientConnection) -> None:
        started = time.monotonic()
        frames = 0
        # Until the service closes it, or it has nothing more to say (still open).
        with contextlib.suppress(ConnectionClosed, OSError, TimeoutError):
            while True:
                async with asyncio.timeout(3.0):
                    await ws.recv()
                frames += 1
        conn.send(("unstalled", ws.close_code, ws.close_reason or "", frames,
                   time.monotonic() - started))  # fmt: skip

    uvloop.run(main())
