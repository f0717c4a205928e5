"""The benchmark's helper processes: the simulator and a pub/sub subscriber.

Each runs in its own process so the service's CPU time is measured alone. The parent
steers them over a ``multiprocessing`` pipe with small tuples (:class:`Peer`).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from multiprocessing.connection import Connection
from typing import Any

from apps.simulator import AlpacaSimulator, SimulatorConfig
from libs.redis_client import RedisConnectionParams
from libs.redis_client.writer import pack_commands
from libs.tasks import cancel_and_wait

__all__ = [
    "EventCounter",
    "Peer",
    "Tally",
    "bench_config",
    "parse_ns",
    "simulator_main",
    "subscriber_main",
]


class Peer:
    """A helper process and its pipe, seen from the parent."""

    def __init__(self, target: Any, *args: Any) -> None:
        # spawn: a fresh interpreter, not a fork of the measuring process and its loop.
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(child, *args), daemon=True)
        self.process.start()

    async def ask(self, message: tuple[Any, ...], timeout: float = 30.0) -> Any:
        self.conn.send(message)
        return await self.reply(timeout)

    async def reply(self, timeout: float = 30.0) -> Any:
        deadline = time.monotonic() + timeout
        while not self.conn.poll():
            if time.monotonic() > deadline or not self.process.is_alive():
                raise RuntimeError(f"benchmark helper did not answer: {self.process.name}")
            await asyncio.sleep(0.005)
        return self.conn.recv()

    def tell(self, message: tuple[Any, ...]) -> None:
        self.conn.send(message)

    def close(self) -> None:
        if self.process.is_alive():
            self.conn.send(("stop",))
            self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)


def _serve_pipe(conn: Connection, handle: Any) -> asyncio.Event:
    """Call ``handle(message)`` for each message from the parent; the event ends the process.

    The pipe is polled rather than registered with the loop: a loop reader would switch
    it to non-blocking mode, and a large reply would then fail with EAGAIN.
    """
    done = asyncio.Event()

    async def serve() -> None:
        while not done.is_set():
            while conn.poll():
                try:
                    message = conn.recv()
                except EOFError:
                    done.set()
                    return
                if message[0] == "stop":
                    done.set()
                reply = handle(message)
                if reply is not None:
                    conn.send(reply)
            await asyncio.sleep(0.005)

    _tasks.add(asyncio.get_running_loop().create_task(serve()))
    return done


_tasks: set[asyncio.Task[None]] = set()


def bench_config() -> SimulatorConfig:
    """The simulator as the benchmarks run it; ``*`` streams a Zipf-skewed tape of 10,000
    symbols, as a real one is (apps/simulator/market.py)."""
    return SimulatorConfig(
        port=0,
        rate=0.0,
        api_key="bench-key",
        secret_key="bench-secret",
        compression=False,
        connection_limit=None,
        seed=7,
        universe_size=10_000,
        universe_skew=1.0,
    )


def simulator_main(conn: Connection, config: SimulatorConfig) -> None:
    """Run the simulator; commands: ("rate", rate, batch), ("stats",), ("subscribed",)
    -> the quote subscriptions of its sessions, ("stop",)."""
    import uvloop

    async def main() -> None:
        async with AlpacaSimulator(config) as sim:
            conn.send(("ready", sim.port))

            def handle(message: tuple[Any, ...]) -> Any:
                if message[0] == "rate":
                    sim.set_rate(message[1], message[2])
                    return None
                if message[0] == "stats":
                    return ("stats", sim.quotes_sent)
                if message[0] == "subscribed":
                    return ("subscribed", sorted(sim.subscribed_quotes))
                return None

            await _serve_pipe(conn, handle).wait()

    uvloop.run(main())


_DAY_CACHE: dict[str, int] = {}


def parse_ns(timestamp: bytes) -> int:
    """Epoch nanoseconds of ``YYYY-MM-DDTHH:MM:SS.fffffffffZ`` (UTC), cheaply."""
    day = timestamp[:10].decode()
    base = _DAY_CACHE.get(day)
    if base is None:
        import datetime as dt

        base = int(dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()) * 10**9
        _DAY_CACHE[day] = base
    seconds = int(timestamp[11:13]) * 3600 + int(timestamp[14:16]) * 60 + int(timestamp[17:19])
    fraction = timestamp[20:-1] if len(timestamp) > 20 else b""
    nanos = int(fraction.ljust(9, b"0")) if fraction else 0
    return base + seconds * 10**9 + nanos


class EventCounter:
    """Counts ``pmessage`` replies in a RESP byte stream with one C split per read.

    Parsing every message (hiredis, one Python call each) cost this process about a
    fifth of a core at 300k events/s, CPU the machine's other processes need. One
    ``split`` on the reply's marker counts the read's events and hands over the sampled
    ones in C: a Python step per event (``find`` for each marker's position) had made
    this process the machine's third consumer of CPU per quote (perf).
    """

    MARKER = b"$8\r\npmessage\r\n"
    _TIMESTAMP = b'"timestamp":"'

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes, count: int, every: int, latencies: list[int], now: int) -> int:
        """Return the new total count; append the latency of every ``every``-th event."""
        # A marker split across reads is found in the joined tail; a full one can't hide there.
        data = self._tail + data
        self._tail = data[-(len(self.MARKER) - 1) :]
        pieces = data.split(self.MARKER)  # pieces[k]: what follows the k-th marker
        found = len(pieces) - 1
        first_sampled = every - count % every  # 1-based index, in this read, of the next sample
        for piece in pieces[first_sampled::every]:
            start = piece.find(self._TIMESTAMP)
            end = piece.find(b'"', start + len(self._TIMESTAMP)) if start >= 0 else -1
            if end > 0:  # else the event continues in the next read: skip this sample
                latencies.append(now - parse_ns(piece[start + len(self._TIMESTAMP) : end]))
        return count + found


class Tally:
    """A subscriber's count of events, when the first and last came, sampled latencies."""

    def __init__(self, every: int) -> None:
        self.reset(every)

    def reset(self, every: int) -> None:
        self.count = 0
        self.first: int | None = None
        self.last: int | None = None
        self.latencies: list[int] = []
        self.every = every

    def take(self, counter: EventCounter, data: bytes, now: int) -> None:
        """Count the events in one read (``now``: its receipt, epoch ns)."""
        count = counter.feed(data, self.count, self.every, self.latencies, now)
        if count != self.count:
            if self.first is None:
                self.first = now
            self.last = now
            self.count = count

    def report(self) -> tuple[str, int, int | None, int | None, list[int]]:
        return ("report", self.count, self.first, self.last, self.latencies)

    def handle(self, message: tuple[Any, ...]) -> Any:
        """A subscriber process's answer to the parent: ("reset", every), ("report",),
        ("count",) -> ("count", events, latency samples): a report without the samples."""
        if message[0] == "reset":
            self.reset(message[1])
            return ("reset",)
        if message[0] == "report":
            return self.report()
        if message[0] == "count":
            return ("count", self.count, len(self.latencies))
        return None


def subscriber_main(conn: Connection, params: RedisConnectionParams, sample_every: int) -> None:
    """Count ``price.updated.*`` events; keep every n-th one's latency (receipt - quote ``t``).

    Commands: those of :meth:`Tally.handle`, and ("stop",).
    """
    import uvloop

    tally = Tally(sample_every)

    async def main() -> None:
        if params.unix_socket_path:
            reader, writer = await asyncio.open_unix_connection(params.unix_socket_path)
        else:
            reader, writer = await asyncio.open_connection(params.host, params.port)
        setup: list[tuple[str, ...]] = []
        if params.password:
            setup.append(("AUTH", params.password))
        writer.write(pack_commands([*setup, ("PSUBSCRIBE", "price.updated.*")]))

        done = _serve_pipe(conn, tally.handle)
        counter = EventCounter()

        async def pump() -> None:
            ready = False
            while True:
                data = await reader.read(1 << 20)
                if not data:
                    return
                now = time.time_ns()
                if not ready and b"psubscribe" in data:
                    ready = True
                    conn.send(("ready",))
                tally.take(counter, data, now)

        task = asyncio.create_task(pump())
        await done.wait()
        await cancel_and_wait(task, quiet=True)
        writer.close()

    uvloop.run(main())
