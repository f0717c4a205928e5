"""``/api/v1/stream`` (WebSocket) and ``/api/v1/stream/sse`` end to end: a real service on
the simulator and a real redis-server, real WebSocket and HTTP clients."""

from __future__ import annotations

import asyncio
import functools
import json
from decimal import Decimal
from typing import Any

import pytest

from apps.simulator import AlpacaSimulator
from tests.apps.market_data_service.streaming.streamclient import StreamClient, ws_url
from tests.fixtures.service import Service, ServiceFactory, local_broker
from tests.helpers import eventually, quote


async def subscribe_service(service: Service, *symbols: str) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": list(symbols)})
    assert reply.status_code == 201, reply.text


async def wait_price(service: Service, symbol: str, mid: str) -> None:
    async def cached() -> bool:
        reply = await service.http.get(f"/api/v1/prices/{symbol}")
        return reply.status_code == 200 and reply.json()["mid"] == mid

    deadline = asyncio.get_running_loop().time() + 10
    while not await cached():
        assert asyncio.get_running_loop().time() < deadline, f"{symbol} never cached at {mid}"
        await asyncio.sleep(0.02)


async def test_snapshot_then_prices(service: Service, simulator: AlpacaSimulator) -> None:
    await subscribe_service(service, "AAPL", "MSFT")
    await simulator.send_quotes([quote("AAPL", "150.10", "150.20")])
    await wait_price(service, "AAPL", "150.15")
    client = await StreamClient.open(ws_url(service.url))
    try:
        await client.subscribe("aapl", "TSLA")
        snapshots = await client.wait_for("snapshot", 2)
        assert [(s["symbol"], s["data"] and s["data"]["mid"]) for s in snapshots] == [
            ("AAPL", "150.15"), ("TSLA", None)]  # fmt: skip
        await client.wait_for("subscriptions")
        for i in range(5):
            await simulator.send_quotes([quote("AAPL", f"150.1{i}", "150.30"),
                                         quote("MSFT", "400.00", "400.02")])  # fmt: skip
        await eventually(lambda: len(client.prices("AAPL")) >= 5, 10, "five AAPL prices")
    finally:
        await client.close()
    last = client.prices("AAPL")[-1]
    assert (last["bid"], last["ask"], last["mid"]) == ("150.14", "150.30", "150.22")
    assert client.prices("MSFT") == []  # not asked for
    assert client.of("error") == []


async def test_bad_requests_get_an_error_and_the_socket_stays_open(service: Service) -> None:
    client = await StreamClient.open(ws_url(service.url))
    bad: list[Any] = [
        "not json",
        b"\xff\xfe",
        {"action": "dance", "symbols": ["AAPL"]},
        {"action": "subscribe", "symbols": ["AAPL", "no way!"]},
        {"action": "subscribe", "symbols": "AAPL"},
        {"action": "subscribe", "symbols": []},
        {"action": "subscribe", "symbols": [1]},
        {"action": "subscribe"},
        {"action": "subscribe", "symbols": ["AAPL"], "extra": 1},
        [1, 2],
        json.dumps({"action": "subscribe", "symbols": ["A"] * 40_000}),  # > 64 KiB
    ]
    try:
        for message in bad:
            await client.send(message)
        errors = await client.wait_for("error", len(bad))
        await client.subscribe("AAPL")  # still serving
        await client.wait_for("subscriptions")
        assert client.close_code is None
    finally:
        await client.close()
    texts = [e["message"] for e in errors]
    assert texts[0].startswith("not JSON")
    assert texts[2] == 'unknown action \'dance\': use "subscribe" or "unsubscribe"'
    assert texts[3].startswith("invalid symbol 'no way!'")
    assert texts[-1].startswith("message too large")
    assert client.of("snapshot")[0]["symbol"] == "AAPL"  # nothing of the bad ones applied
    assert client.of("subscriptions") == [{"type": "subscriptions", "symbols": ["AAPL"]}]


async def test_unsubscribe_and_everything(service: Service, simulator: AlpacaSimulator) -> None:
    await subscribe_service(service, "AAPL", "MSFT")
    client = await StreamClient.open(ws_url(service.url))
    try:
        await client.subscribe("AAPL", "MSFT")
        await client.wait_for("subscriptions")
        await client.send({"action": "unsubscribe", "symbols": ["MSFT", "TSLA"]})
        await client.wait_for("subscriptions", 2)
        await simulator.send_quotes([quote("AAPL", "1.00", "1.02"), quote("MSFT", "2.00", "2.02")])
        await eventually(lambda: client.prices("AAPL"), 10, "an AAPL price")
        await client.send({"action": "subscribe", "symbols": "*"})
        await client.wait_for("subscriptions", 3)
        await simulator.send_quotes([quote("MSFT", "3.00", "3.02")])
        await eventually(lambda: client.prices("MSFT"), 10, "an MSFT price under *")
    finally:
        await client.close()
    assert [m["symbols"] for m in client.of("subscriptions")] == [["AAPL", "MSFT"], ["AAPL"], ["*"]]
    # No MSFT price while unsubscribed (the 2.01 may come after "*": the hub may pass it on
    # after the subscription, as the snapshot may already hold it).
    everything = client.messages.index({"type": "subscriptions", "symbols": ["*"]})
    unsubscribed = client.messages.index({"type": "subscriptions", "symbols": ["AAPL"]})
    between = client.messages[unsubscribed:everything]
    assert not [m for m in between if m["type"] == "price" and m["data"]["symbol"] == "MSFT"]
    assert client.prices("MSFT")[-1]["mid"] == "3.01"


async def test_sse(service: Service, simulator: AlpacaSimulator) -> None:
    await subscribe_service(service, "AAPL")
    await simulator.send_quotes([quote("AAPL", "10.00", "10.02")])
    await wait_price(service, "AAPL", "10.01")
    path = "/api/v1/stream/sse"
    cases = (("AAPL,no way", "invalid_symbol"), ("", "invalid_symbol"), (None, "invalid_request"))
    for bad, code in cases:
        reply = await service.http.get(path, params={} if bad is None else {"symbols": bad})
        assert reply.status_code == 422 and reply.json()["code"] == code, reply.text
    received: list[Any] = []
    async with service.http.stream("GET", path, params={"symbols": "aapl,MSFT"}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        sent = False
        async for line in reply.aiter_lines():
            if not line.startswith("data: "):
                continue
            decoded = json.loads(line[len("data: ") :])
            received.extend(decoded if isinstance(decoded, list) else [decoded])
            if not sent and any(m["type"] == "subscriptions" for m in received):
                await simulator.send_quotes([quote("AAPL", "10.10", "10.12")])
                sent = True
            if any(m["type"] == "price" for m in received):
                break
    kinds = [m["type"] for m in received]
    assert kinds[:3] == ["snapshot", "snapshot", "subscriptions"]
    assert received[0]["symbol"] == "AAPL" and received[0]["data"]["mid"] == "10.01"
    assert received[1] == {"type": "snapshot", "symbol": "MSFT", "data": None}
    assert [m["data"]["mid"] for m in received if m["type"] == "price"] == ["10.11"]
    await eventually(lambda: service.service.stream_hub.clients == 0, 10, "the SSE client gone")


async def test_a_crypto_pair_streams_with_exact_fractional_sizes(
    service: Service, simulator: AlpacaSimulator
) -> None:
    """BTC/USD's sizes are fractions of a coin: they must reach WebSocket and SSE clients
    exactly, as decimal strings, and a stock's size still reads as before ("1")."""
    await subscribe_service(service, "AAPL", "BTC/USD")
    await eventually(service.stream.crypto_connection.is_connected, 10, "the crypto connection")
    first = {"S": "BTC/USD", "bp": Decimal("71859.53"), "bs": Decimal("0.00012345"),
             "ap": Decimal("71939.7"), "as": Decimal("1.5")}  # fmt: skip
    await simulator.send_quotes([first, quote("AAPL", "150.10", "150.20")])
    await wait_price(service, "BTC/USD", "71899.615")
    await wait_price(service, "AAPL", "150.15")
    client = await StreamClient.open(ws_url(service.url))
    sse: list[Any] = []
    try:
        await client.subscribe("btc/usd", "AAPL")
        await client.wait_for("subscriptions")
        async with service.http.stream(
            "GET", "/api/v1/stream/sse", params={"symbols": "BTC/USD"}
        ) as reply:
            assert reply.status_code == 200
            sent = False
            async for line in reply.aiter_lines():
                if not line.startswith("data: "):
                    continue
                decoded = json.loads(line[len("data: ") :])
                sse.extend(decoded if isinstance(decoded, list) else [decoded])
                if not sent and any(m["type"] == "subscriptions" for m in sse):
                    second = first | {"bs": Decimal("0.000012345678"), "bp": Decimal("71860")}
                    await simulator.send_quotes([second])
                    sent = True
                if any(m["type"] == "price" for m in sse):
                    break
        await eventually(lambda: client.prices("BTC/USD"), 10, "a BTC/USD price on the socket")
    finally:
        await client.close()
    snapshots = {m["symbol"]: m["data"] for m in client.of("snapshot")}
    assert (snapshots["BTC/USD"]["bid_size"], snapshots["BTC/USD"]["ask_size"]) == (
        "0.00012345", "1.5")  # fmt: skip
    assert (snapshots["AAPL"]["bid_size"], snapshots["AAPL"]["ask_size"]) == ("1", "2")
    for price in (
        client.prices("BTC/USD")[-1],
        next(m["data"] for m in sse if m["type"] == "price"),
    ):
        assert (price["bid"], price["bid_size"], price["ask_size"], price["seq"]) == (
            "71860", "0.000012345678", "1.5", 2)  # fmt: skip
    assert sse[0]["data"]["bid_size"] == "0.00012345"  # the SSE snapshot
    assert client.of("error") == []


def unexplained_jumps(messages: list[dict[str, Any]]) -> list[str]:
    """Each ``price`` whose seq skips some of its symbol's, with no ``coalesced`` naming the
    symbol since its last price or snapshot: an update lost between resync and stream."""
    last: dict[str, tuple[str, int]] = {}
    coalesced: set[str] = set()
    jumps = []
    for message in messages:
        if message["type"] == "coalesced":
            coalesced.update(message["symbols"])
        data = message.get("data")
        if message["type"] not in ("price", "snapshot") or data is None:
            continue
        symbol, key = data["symbol"], (data["epoch"], data["seq"])
        before = last.get(symbol)
        skipped = before is not None and before[0] == key[0] and key[1] > before[1] + 1
        if message["type"] == "price" and skipped and symbol not in coalesced:
            jumps.append(f"{symbol}: seq {before[1] if before else 0} -> {key[1]}")
        last[symbol] = key
        coalesced.discard(symbol)
    return jumps


def filled(client: StreamClient, count: int) -> bool:
    return len([m for m in client.of("resync") if m["reason"] == "notice:gap.filled"]) >= count


def more(client: StreamClient, than: int) -> bool:
    return len(client.prices("AAPL")) > than


@pytest.mark.timeout(90)
async def test_broker_reconnects_with_a_gap_fill_leave_no_hole(
    start_service: ServiceFactory, simulator: AlpacaSimulator
) -> None:
    """The status page's scenario: quotes flowing, the broker connection drops, the service
    resyncs (``stream.reconnected``), the gap fill writes REST quotes (the next seq) and
    says ``gap.filled``, live quotes go on. A client sees every seq in between, or a
    snapshot or ``coalesced`` that accounts for the jump."""
    service = await start_service(**local_broker(simulator))  # the gap fill's REST
    await service.wait_connected()
    await subscribe_service(service, "AAPL", "MSFT")
    await eventually(lambda: {"AAPL", "MSFT"} <= simulator.subscribed_quotes, what="subscribed")
    client = await StreamClient.open(ws_url(service.url))
    try:
        await client.subscribe("AAPL", "MSFT")
        simulator.set_rate(20)
        await eventually(lambda: len(client.prices("MSFT")) > 3, 20, "quotes flowing")
        for drop in range(1, 6):
            await simulator.drop_connections()
            await eventually(functools.partial(filled, client, drop), 20, f"gap fill {drop}")
            seen = len(client.prices("AAPL"))
            await eventually(functools.partial(more, client, seen), 20, "live again")
    finally:
        await client.close()
    assert unexplained_jumps(client.messages) == []
    assert client.of("error") == []
