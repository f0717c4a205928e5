"""The benchmark's helper processes: the simulator and a pub/sub subscriber.

Each runs in its own process so the service's CPU time is measured alone. The parent
steers them over a ``multiprocessing`` pipe with small tuples.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from multiprocessing.connection import Connection
from typing import Any

import hiredis

from apps.simulator import AlpacaSimulator, SimulatorConfig
from libs.redis_client import RedisConnectionParams
from libs.redis_client.writer import pack_commands

__all__ = ["parse_ns", "simulator_main", "subscriber_main"]


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


def simulator_main(conn: Connection, config: SimulatorConfig) -> None:
    """Run the simulator; commands: ("rate", rate, batch), ("stats",), ("stop",)."""
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


def subscriber_main(conn: Connection, params: RedisConnectionParams, sample_every: int) -> None:
    """Count ``price.updated.*`` events; keep every n-th one's latency (receipt - quote ``t``).

    Commands: ("reset", sample_every), ("report",) -> counts and latencies, ("stop",).
    """
    import uvloop

    state: dict[str, Any] = {"count": 0, "first": None, "last": None, "lat": [], "every": 1}
    state["every"] = sample_every

    async def main() -> None:
        if params.unix_socket_path:
            reader, writer = await asyncio.open_unix_connection(params.unix_socket_path)
        else:
            reader, writer = await asyncio.open_connection(params.host, params.port)
        setup: list[tuple[str, ...]] = []
        if params.password:
            setup.append(("AUTH", params.password))
        writer.write(pack_commands([*setup, ("PSUBSCRIBE", "price.updated.*")]))
        parser = hiredis.Reader()
        ready = False

        def handle(message: tuple[Any, ...]) -> Any:
            if message[0] == "reset":
                state.update(count=0, first=None, last=None, lat=[], every=message[1])
                return ("reset",)
            if message[0] == "report":
                return ("report", state["count"], state["first"], state["last"], state["lat"])
            return None

        done = _serve_pipe(conn, handle)

        async def pump() -> None:
            nonlocal ready
            marker = b'"timestamp":"'
            while True:
                data = await reader.read(1 << 20)
                if not data:
                    return
                now = time.time_ns()
                parser.feed(data)
                count = state["count"]
                every = state["every"]
                lat = state["lat"]
                while (reply := parser.gets()) is not False:
                    if reply[0] != b"pmessage":
                        if not ready:
                            ready = True
                            conn.send(("ready",))
                        continue
                    count += 1
                    if count % every == 0:
                        payload = reply[3]
                        start = payload.index(marker) + len(marker)
                        end = payload.index(b'"', start)
                        lat.append(now - parse_ns(payload[start:end]))
                if count != state["count"]:
                    if state["first"] is None:
                        state["first"] = now
                    state["last"] = now
                    state["count"] = count

        task = asyncio.create_task(pump())
        await done.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        writer.close()

    uvloop.run(main())
