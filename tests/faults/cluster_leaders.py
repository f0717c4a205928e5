"""Leader election on a Redis Cluster, seen from outside (docs/leadership.md, "On a Redis
Cluster"): what every primary executed (``MONITOR`` with the server's time), what a real
sharded subscriber received on every shard, and the cache on each symbol's owner.

The nodes run on one machine, so their ``MONITOR`` times share a clock: "no write of
the old epoch after the first of the new one" is checked across every primary at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio
from redis.crc import key_slot

from libs.market_data.keys import KeySpace
from libs.redis_client import RedisConnectionParams
from libs.redis_embedded.cluster import EmbeddedRedisCluster
from tests.helpers import eventually

__all__ = [
    "KEYS",
    "Record",
    "Write",
    "cached",
    "cached_epochs",
    "monitor_primaries",
    "shard_events",
]

KEYS = KeySpace(cluster=True)


@dataclass(frozen=True)
class Write:
    """One price write a primary executed: ``SET price:{S}`` or ``SPUBLISH price.updated.{S}``."""

    at: float  # the server's clock (MONITOR)
    node: str
    verb: str
    epoch: str


@dataclass
class Record:
    writes: list[Write] = field(default_factory=list)
    events: list[tuple[float, str, dict[str, Any]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # a listener that failed: the test fails

    def late(self, old: str, new: str) -> list[Write]:
        """Writes of ``old`` at or after the first write of ``new`` on any primary."""
        first = min((w.at for w in self.writes if w.epoch == new), default=None)
        assert first is not None, "no write of the new epoch recorded"
        return [w for w in self.writes if w.epoch == old and w.at >= first]

    def late_events(self, old: str, new: str) -> list[dict[str, Any]]:
        """Events of ``old`` received after the first event of ``new`` on any shard."""
        first = min((at for at, _, e in self.events if e["epoch"] == new), default=None)
        assert first is not None, "no event of the new epoch received"
        return [e for at, _, e in self.events if e["epoch"] == old and at >= first]

    def count(self, epoch: str) -> int:
        return sum(1 for _, _, e in self.events if e["epoch"] == epoch)


def _price_write(node: str, at: float, line: str) -> Write | None:
    parts = line.split(" ")
    verb = parts[0].upper()
    if len(parts) < 3:
        return None
    if verb == "SET" and parts[1].startswith(KEYS.price_key_prefix):
        payload = " ".join(parts[2:-2] if parts[-2].upper() == "EX" else parts[2:])
    elif verb == "SPUBLISH" and parts[1].startswith(KEYS.price_channel_prefix):
        payload = " ".join(parts[2:])
    else:
        return None
    return Write(at, node, verb, str(json.loads(payload)["epoch"]))


async def _monitor(params: RedisConnectionParams, record: Record, ready: asyncio.Event) -> None:
    node = f"{params.host}:{params.port}"
    client = redis.asyncio.Redis(**{**params.redis_kwargs(), "socket_timeout": None})
    try:
        async with client.monitor() as feed:
            ready.set()
            async for entry in feed.listen():
                write = _price_write(node, float(entry["time"]), entry["command"])
                if write is not None:
                    record.writes.append(write)
    finally:
        await client.aclose()


async def _subscribe(
    params: RedisConnectionParams, channels: Sequence[str], record: Record, ready: asyncio.Event
) -> None:
    node = f"{params.host}:{params.port}"
    client = redis.asyncio.Redis(**{**params.redis_kwargs(), "socket_timeout": None})
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        for channel in channels:  # one SSUBSCRIBE per slot: several would be CROSSSLOT
            await pubsub.ssubscribe(channel)
        ready.set()
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is not None and message.get("type") == "smessage":
                record.events.append((time.monotonic(), node, json.loads(message["data"])))
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


async def _guarded(work: Coroutine[Any, Any, None], record: Record) -> None:
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        record.errors.append(repr(exc))


@contextlib.asynccontextmanager
async def monitor_primaries(
    cluster: EmbeddedRedisCluster, symbols: Sequence[str]
) -> AsyncIterator[Record]:
    """For the block: ``MONITOR`` on every primary, and ``SSUBSCRIBE`` on each primary to
    the channels of the symbols it owns (a real sharded subscriber)."""
    record = Record()
    tasks: list[asyncio.Task[None]] = []
    readies: list[asyncio.Event] = []
    for node in cluster.primaries():
        ready = asyncio.Event()
        tasks.append(asyncio.create_task(_guarded(_monitor(node.params, record, ready), record)))
        readies.append(ready)
        owned = [s for s in symbols if cluster.owner_of(_slot(s)) is node]
        if owned:
            ready = asyncio.Event()
            channels = [KEYS.price_channel(s) for s in owned]
            listening = _subscribe(node.params, channels, record, ready)
            tasks.append(asyncio.create_task(_guarded(listening, record)))
            readies.append(ready)
    try:
        await eventually(lambda: all(r.is_set() for r in readies), timeout=10, what="listening")
        yield record
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _slot(symbol: str) -> int:
    return key_slot(KEYS.price_key(symbol).encode())


def cached(cluster: EmbeddedRedisCluster, symbol: str) -> dict[str, Any] | None:
    """``price:{S}`` as its slot's owner holds it, parsed (None where missing)."""
    owner = cluster.owner_of(_slot(symbol))
    with redis.Redis(**owner.params.redis_kwargs()) as client:
        raw = client.get(KEYS.price_key(symbol))
    return None if raw is None else dict(json.loads(raw))


def cached_epochs(cluster: EmbeddedRedisCluster, symbols: Sequence[str]) -> set[str]:
    return {str(r["epoch"]) for s in symbols if (r := cached(cluster, s)) is not None}


def shard_events(record: Record) -> dict[str, int]:
    """Events received per shard (to show every shard was heard)."""
    counts: dict[str, int] = {}
    for _, node, _ in record.events:
        counts[node] = counts.get(node, 0) + 1
    return counts
