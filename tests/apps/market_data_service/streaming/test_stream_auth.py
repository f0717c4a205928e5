"""The stream under ``MARKET_DATA_API_KEY``: the key in a header, or a one-time ticket;
neither ever logged."""

from __future__ import annotations

import pytest
from websockets.exceptions import InvalidStatus

from apps.market_data_service.streaming.tickets import TicketBook
from apps.simulator import AlpacaSimulator
from tests.apps.market_data_service.streaming.streamclient import StreamClient, ws_url
from tests.fixtures.service import Service, ServiceFactory, local_broker
from tests.helpers import CapturedLogs, capture_logs

API_KEY = "mds-stream-key-5d1e0c7a9b3f"


@pytest.fixture
async def keyed(start_service: ServiceFactory, simulator: AlpacaSimulator) -> Service:
    started = await start_service(market_data_api_key=API_KEY, **local_broker(simulator))
    await started.wait_connected()
    return started


def server_logs(logs: CapturedLogs) -> str:
    """What the service logged (the test's own WebSocket client logs its requests)."""
    return "\n".join(r.getMessage() for r in logs.records if not r.name.startswith("websockets"))


async def refused(url: str, headers: dict[str, str] | None = None) -> int:
    with pytest.raises(InvalidStatus) as caught:
        await StreamClient.open(url, headers=headers)
    return caught.value.response.status_code


async def opened(url: str, headers: dict[str, str] | None = None) -> None:
    client = await StreamClient.open(url, headers=headers)
    await client.subscribe("AAPL")
    await client.wait_for("subscriptions")
    await client.close()


async def ticket(service: Service) -> str:
    reply = await service.http.post("/api/v1/stream/ticket", headers={"X-API-Key": API_KEY})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body["expires_in"] == 30 and len(body["ticket"]) >= 40
    return str(body["ticket"])


async def test_websocket_needs_the_key_or_a_ticket_used_once(keyed: Service) -> None:
    url = ws_url(keyed.url)
    with capture_logs() as logs:
        assert await refused(url) == 403
        assert await refused(url, {"X-API-Key": "wrong-key-123"}) == 403
        await opened(url, {"X-API-Key": API_KEY})
        await opened(url, {"Authorization": f"Bearer {API_KEY}"})
        assert (await keyed.http.post("/api/v1/stream/ticket")).status_code == 401
        one = await ticket(keyed)
        await opened(ws_url(keyed.url, f"ticket={one}"))
        assert await refused(ws_url(keyed.url, f"ticket={one}")) == 403  # used up
        assert await refused(ws_url(keyed.url, "ticket=made-up")) == 403
    text = server_logs(logs)
    assert "/api/v1/stream?ticket=***" in text  # uvicorn's line, masked
    assert one not in text and API_KEY not in text


async def test_sse_needs_the_key_or_a_ticket(keyed: Service) -> None:
    path = "/api/v1/stream/sse"
    with capture_logs() as logs:
        reply = await keyed.http.get(path, params={"symbols": "AAPL"})
        assert reply.status_code == 401 and reply.json()["code"] == "unauthorized"
        one = await ticket(keyed)
        for expected in (200, 401):  # the second time: used up
            params = {"symbols": "AAPL", "ticket": one}
            async with keyed.http.stream("GET", path, params=params) as reply:
                assert reply.status_code == expected
        async with keyed.http.stream(
            "GET", path, params={"symbols": "AAPL"}, headers={"X-API-Key": API_KEY}
        ) as reply:
            assert reply.status_code == 200
    text = server_logs(logs)
    assert one not in text and API_KEY not in text


def test_tickets_are_single_use_and_expire() -> None:
    now = [0.0]
    book = TicketBook(ttl=30, max_outstanding=3, clock=lambda: now[0])
    first, second = book.issue(), book.issue()
    assert first != second
    assert book.redeem(first) and not book.redeem(first)
    now[0] = 31.0
    assert not book.redeem(second)  # expired
    tickets = [book.issue() for _ in range(4)]  # the oldest is forgotten past the bound
    assert len(book) == 3 and not book.redeem(tickets[0]) and book.redeem(tickets[3])
