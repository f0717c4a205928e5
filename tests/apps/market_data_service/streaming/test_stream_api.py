"""``/api/v1/stream`` (WebSocket) and ``/api/v1/stream/sse`` end to end: a real service on
the simulator and a real redis-server, real WebSocket and HTTP clients."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from apps.simulator import AlpacaSimulator
from tests.apps.market_data_service.streaming.streamclient import StreamClient, ws_url
from tests.fixtures.service import Service
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
