"""The whole service on a 3-primary Redis Cluster, as a user runs it (docs/cluster.md):
``market-data serve`` with ``REDIS_CLUSTER_NODES``, the simulator, HTTP and WebSocket
clients.

- subscribe over HTTP: every price lands as ``price:{S}`` on its slot's owner (and
  nothing else there), its event is ``SPUBLISH``ed on that shard, and the price and P&L
  reads answer the exact quotes;
- the stream endpoint, subscribed to symbols on all three shards, delivers every update
  of each (no ``seq`` skipped) and ends on the exact latest quotes;
- a primary paused (SIGSTOP) or killed (no replica): ``/health`` names the missing shard,
  the other shards keep streaming, and once it is back the quotes held for it land.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
import redis

from apps.simulator import AlpacaSimulator
from libs.redis_client.cluster import ClusterParams
from libs.redis_embedded.cluster import EmbeddedRedisCluster
from libs.redis_embedded.cluster_node import ClusterNodeProcess
from tests.apps.market_data_service.streaming.streamclient import StreamClient, ws_url
from tests.faults.cluster_leaders import monitor_primaries
from tests.faults.cluster_service import (
    KEYS,
    ServeProcess,
    expected_mid,
    mid_on,
    owners,
    read,
    seq_on,
    serve_on_cluster,
)
from tests.faults.harness import RATE
from tests.fixtures.cluster import ClusterFactory
from tests.helpers import eventually, eventually_blocking, quote

__all__: list[str] = []

# Two symbols on each primary of a 3-primary cluster (slots split evenly).
SYMBOLS = ["AAPL", "MSFT", "GOOGL", "TSLA", "AMZN", "JPM"]
# One position per shard: the P&L read gathers prices from all three.
POSITIONS = (
    {"symbol": "AAPL", "qty": "10", "avg_entry_price": "187.50"},
    {"symbol": "GOOGL", "qty": "-4", "avg_entry_price": "140.2550"},
    {"symbol": "JPM", "qty": "7", "avg_entry_price": "200.01"},
)
CENT = Decimal("0.01")


def _spread(cluster: EmbeddedRedisCluster) -> dict[str, ClusterNodeProcess]:
    found = owners(cluster, SYMBOLS)
    assert len({n.port for n in found.values()}) == 3, "the symbols must cover every primary"
    return found


def _quotes(base: int) -> dict[str, tuple[str, str]]:
    """One exact (bid, ask) per symbol, different for each symbol and each ``base``."""
    return {s: (f"{base + i}.1234", f"{base + i}.1256") for i, s in enumerate(SYMBOLS)}


def _mid(bid: str, ask: str) -> Decimal:
    return (Decimal(bid) + Decimal(ask)) / 2


async def _send(sim: AlpacaSimulator, quotes: dict[str, tuple[str, str]]) -> None:
    await sim.send_quotes([quote(s, bid, ask) for s, (bid, ask) in quotes.items()])


async def _subscribe(svc: ServeProcess, sim: AlpacaSimulator) -> None:
    reply = await svc.http.post("/api/v1/subscribe", json={"symbols": SYMBOLS})
    assert reply.status_code == 201, reply.text
    await eventually(lambda: set(SYMBOLS) <= sim.subscribed_quotes, 15, "subscribed")


def _price_keys(node: ClusterNodeProcess) -> set[str]:
    with redis.Redis(**node.params.redis_kwargs(), decode_responses=True) as client:
        return set(client.scan_iter(match="price*"))


@pytest.mark.timeout(120)
async def test_subscribe_over_http_prices_land_on_their_shards_and_reads_answer(
    simulator_factory: Callable[..., Any],
    redis_cluster: EmbeddedRedisCluster,
    cluster_params: ClusterParams,  # every primary emptied first
    tmp_path: Path,
) -> None:
    owner = _spread(redis_cluster)
    sim: AlpacaSimulator = await simulator_factory(positions=POSITIONS)
    sent = _quotes(100)
    async with serve_on_cluster(sim, redis_cluster, tmp_path) as svc:
        await _subscribe(svc, sim)
        async with monitor_primaries(redis_cluster, SYMBOLS) as record:
            await _send(sim, sent)
            await eventually_blocking(
                lambda: all(
                    (r := read(owner[s], s)) is not None and Decimal(r["mid"]) == _mid(*sent[s])
                    for s in SYMBOLS
                ),
                15,
                "every price on its slot's owner",
            )
            await eventually(
                lambda: {e["symbol"] for _, _, e in record.events} == set(SYMBOLS),
                10,
                "an event of every symbol on its shard",
            )
        assert record.errors == []
        for _, node, event in record.events:  # heard on the owner's SSUBSCRIBE only
            assert node == owner[event["symbol"]].address, event
            assert Decimal(event["price"]) == _mid(*sent[event["symbol"]]), event
        # The cluster names, and each primary holds exactly the prices of its slots.
        for primary in redis_cluster.primaries():
            mine = {KEYS.price_key(s) for s in SYMBOLS if owner[s] is primary}
            assert _price_keys(primary) == mine, primary.address
        assert KEYS.price_key("AAPL") == "price:{AAPL}"

        for s, (bid, ask) in sent.items():
            body = await svc.get(f"/api/v1/prices/{s}")
            assert (Decimal(body["bid"]), Decimal(body["ask"])) == (Decimal(bid), Decimal(ask))
            assert Decimal(body["mid"]) == _mid(bid, ask), body
        many = await svc.get(f"/api/v1/prices?symbols={','.join(SYMBOLS)}")
        assert many["missing"] == []
        assert {s: Decimal(p["mid"]) for s, p in many["prices"].items()} == {
            s: _mid(*q) for s, q in sent.items()
        }
        await _check_pnl(svc, sent)
        health = await svc.get("/health")
        assert (health["status"], health["redis_connected"]) == ("healthy", True), health


async def _check_pnl(svc: ServeProcess, sent: dict[str, tuple[str, str]]) -> None:
    """The real-time P&L prices each position with its shard's cached mid, to the cent."""
    body: dict[str, Any] = {}

    async def priced() -> bool:
        body.update(await svc.get("/api/v1/positions/pnl/realtime"))
        return len(body["positions"]) == 3 and all(
            p["price_source"] == "realtime" for p in body["positions"]
        )

    deadline = asyncio.get_running_loop().time() + 15
    while not await priced():
        assert asyncio.get_running_loop().time() < deadline, f"P&L never realtime: {body}"
        await asyncio.sleep(0.1)
    assert body["cache_error"] is None, body
    total = Decimal(0)
    for item in body["positions"]:
        mid = _mid(*sent[item["symbol"]])
        position = next(p for p in POSITIONS if p["symbol"] == item["symbol"])
        pl = (mid - Decimal(position["avg_entry_price"])) * Decimal(position["qty"])
        assert Decimal(item["current_price"]) == mid, item
        assert Decimal(item["unrealized_pl"]) == pl.quantize(CENT, ROUND_HALF_EVEN), item
        total += pl
    # Rounded once, from the exact sum (docs/positions.md).
    totals = body["totals"]
    assert Decimal(totals["total_unrealized_pl"]) == total.quantize(CENT, ROUND_HALF_EVEN), totals


@pytest.mark.timeout(120)
async def test_the_stream_endpoint_delivers_every_update_of_every_shard(
    simulator_factory: Callable[..., Any],
    redis_cluster: EmbeddedRedisCluster,
    cluster_params: ClusterParams,
    tmp_path: Path,
) -> None:
    owner = _spread(redis_cluster)
    sim: AlpacaSimulator = await simulator_factory()
    async with serve_on_cluster(sim, redis_cluster, tmp_path) as svc:
        await _subscribe(svc, sim)
        first = _quotes(300)
        await _send(sim, first)
        await eventually_blocking(
            lambda: all(read(owner[s], s) is not None for s in SYMBOLS), 15, "prices cached"
        )
        client = await StreamClient.open(ws_url(svc.url))
        try:
            await client.subscribe(*SYMBOLS)
            await client.wait_for("subscriptions")
            snapshots = await client.wait_for("snapshot", len(SYMBOLS))
            assert {m["symbol"]: Decimal(m["data"]["mid"]) for m in snapshots} == {
                s: _mid(*q) for s, q in first.items()
            }
            sim.set_rate(RATE, batch_size=len(SYMBOLS))
            await eventually(
                lambda: all(len(client.prices(s)) >= 20 for s in SYMBOLS),
                30,
                "20 updates of every symbol over the stream",
            )
            sim.set_rate(0.0)
            last = _quotes(500)
            await _send(sim, last)
            await eventually(
                lambda: all(
                    (p := client.latest.get(s)) is not None and Decimal(p["mid"]) == _mid(*q)
                    for s, q in last.items()
                ),
                15,
                "the exact latest quote of every symbol over the stream",
            )
        finally:
            await client.close()
    assert client.of("error") == [] and client.of("coalesced") == [], client.messages[-5:]
    assert client.of("resync") == [], client.of("resync")
    for s in SYMBOLS:
        seqs = [m["data"]["seq"] for m in client.messages if _of(m, s)]
        # A snapshot, then each update once and in order: nothing skipped on any shard.
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), (s, seqs)
        cached = read(owner[s], s)
        assert cached is not None and cached["seq"] == seqs[-1], (s, cached)
        latest = client.latest[s]
        assert latest is not None
        bid, ask = last[s]
        assert (Decimal(latest["bid"]), Decimal(latest["ask"])) == (Decimal(bid), Decimal(ask))


def _of(message: dict[str, Any], symbol: str) -> bool:
    if message["type"] == "snapshot":
        return bool(message["symbol"] == symbol)
    return bool(message["type"] == "price" and message["data"]["symbol"] == symbol)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("fault", ["sigstop", "kill"])
async def test_a_missing_primary_is_named_in_health_and_gets_its_quotes_when_back(
    fault: str,
    simulator_factory: Callable[..., Any],
    cluster_factory: ClusterFactory,
    tmp_path: Path,
) -> None:
    cluster = cluster_factory(primaries=3)
    owner = _spread(cluster)
    victim = owner["AAPL"]
    held = [s for s in SYMBOLS if owner[s] is victim]
    others = [s for s in SYMBOLS if owner[s] is not victim]
    sim: AlpacaSimulator = await simulator_factory()
    async with serve_on_cluster(sim, cluster, tmp_path, REDIS_WRITE_TIMEOUT="0.5") as svc:
        await _subscribe(svc, sim)
        sim.set_rate(RATE, batch_size=len(SYMBOLS))
        await eventually_blocking(
            lambda: all(read(owner[s], s) is not None for s in SYMBOLS), 15, "prices cached"
        )
        assert victim.pid is not None
        pid = victim.pid
        if fault == "sigstop":
            os.kill(pid, signal.SIGSTOP)
        else:
            victim.kill()
        try:
            body = await svc.wait_health(
                lambda b: f"shard {victim.address}" in (b.get("reason") or ""),
                "the missing shard named in /health",
            )
            assert body["status"] == "degraded", body
            # The other shards keep taking the stream meanwhile.
            before = {s: seq_on(owner[s], s) for s in others}
            await eventually_blocking(
                lambda: all(seq_on(owner[s], s) > before[s] for s in others),
                15,
                "the shards that are up streaming on",
            )
            # The last quotes come while the shard is down: they must be held for it.
            sim.set_rate(0.0)
            await svc.wait_health(
                lambda b: b["stats"]["quotes_received"] >= sim.quotes_sent, "every quote read"
            )
            await eventually_blocking(
                lambda: all(mid_on(owner[s], s) == expected_mid(sim, s) for s in others),
                15,
                "the up shards on the latest quotes",
            )
        finally:
            if fault == "sigstop":
                os.kill(pid, signal.SIGCONT)
            elif not victim.running:
                await asyncio.to_thread(victim.start)
        await asyncio.to_thread(cluster.wait_ok)
        await svc.wait_health(lambda b: b["status"] == "healthy", "healthy again")
        await eventually_blocking(
            lambda: all(mid_on(victim, s) == expected_mid(sim, s) for s in held),
            15,
            f"the held quotes of {held} on {victim.address}",
        )
        for s in SYMBOLS:  # and nothing went backwards anywhere
            assert mid_on(owner[s], s) == expected_mid(sim, s), s
