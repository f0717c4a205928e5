"""``/health/live`` and ``/health/ready``: the probes an orchestrator points at.

Live answers 200 while the process serves; ready answers 200 only while the feed is
connected, Redis takes writes and the saved subscriptions are restored, else 503 with
the reasons in a problem details body. Both are public, like ``/health``. The service
runs on the shared harness against the simulator and real redis-servers, whose faults
are real (a stopped simulator, a killed or absent Redis, refused credentials).
"""

from __future__ import annotations

import asyncio
from typing import Any

from apps.simulator import AlpacaSimulator
from tests.fixtures.redis import RedisFactory, closed_port
from tests.fixtures.service import Service, ServiceFactory
from tests.helpers import quote

API_KEY = "probe-api-key-9a8b7c6d5e4f3210"


async def ready(service: Service) -> tuple[int, dict[str, Any]]:
    reply = await service.http.get("/health/ready")
    if reply.status_code != 200:
        assert reply.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = reply.json()
    return reply.status_code, body


async def wait_ready(service: Service, status: int, within: float = 5.0) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        code, body = await ready(service)
        if code == status:
            return body
        assert asyncio.get_running_loop().time() < deadline, f"ready stayed {code}: {body}"
        await asyncio.sleep(0.02)


async def live(service: Service) -> tuple[int, Any]:
    reply = await service.http.get("/health/live")
    return reply.status_code, reply.json()


ALIVE = (200, {"status": "alive"})


def not_ready(body: dict[str, Any]) -> str:
    assert body["status"] == 503
    assert body["code"] == "not_ready"
    assert body["title"] == "Service Unavailable"
    detail: str = body["detail"]
    assert detail.startswith("not ready: ")
    return detail


async def test_streaming_is_ready_and_live(service: Service) -> None:
    assert await ready(service) == (200, {"status": "ready"})
    assert await live(service) == ALIVE


async def test_not_connected_is_not_ready_but_live(
    start_service: ServiceFactory, simulator: AlpacaSimulator
) -> None:
    await simulator.stop()  # nothing listens: the stream keeps retrying
    started = await start_service(max_reconnect_attempts=1000)
    await started.wait_health(lambda b: b["state"] in ("connecting", "reconnecting"))
    code, body = await ready(started)
    assert code == 503
    assert "stream" in not_ready(body)
    assert await live(started) == ALIVE
    # /health itself is unchanged: 200 degraded.
    health = await started.health()
    assert (health["_status_code"], health["status"]) == (200, "degraded")


async def test_a_stream_that_gave_up_is_not_ready(start_service: ServiceFactory) -> None:
    started = await start_service(alpaca_secret_key="wrong-secret-value-123")
    await started.wait_health(lambda b: b["state"] == "failed", "the stream to fail")
    code, body = await ready(started)
    assert code == 503
    detail = not_ready(body)
    assert "gave up" in detail and "402" in detail
    assert "wrong-secret-value-123" not in detail
    assert await live(started) == ALIVE


async def test_redis_unreachable_is_not_ready(start_service: ServiceFactory) -> None:
    started = await start_service(redis_port=closed_port())
    await started.wait_health(lambda b: b["websocket_connected"], "the stream to connect")
    code, body = await ready(started)
    assert code == 503
    detail = not_ready(body)
    assert "redis" in detail.lower()
    # Nor were the saved subscriptions read.
    assert "subscriptions not restored yet" in detail
    assert await live(started) == ALIVE


async def test_a_redis_outage_makes_it_unready_until_redis_is_back(
    start_service: ServiceFactory, simulator: AlpacaSimulator, redis_factory: RedisFactory
) -> None:
    server = redis_factory()
    started = await start_service(redis_host=server.host, redis_port=server.port)
    await started.wait_connected()
    assert (await ready(started))[0] == 200
    reply = await started.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})
    assert reply.status_code == 201
    server.kill()
    await simulator.send_quotes([quote("AAPL", "10.00", "10.02")])  # the sink notices
    body = await wait_ready(started, 503)
    assert "redis" in not_ready(body).lower()
    assert await live(started) == ALIVE
    await asyncio.to_thread(server.restart)
    assert await wait_ready(started, 200) == {"status": "ready"}


async def test_the_probes_need_no_api_key(start_service: ServiceFactory) -> None:
    started = await start_service(market_data_api_key=API_KEY)
    await started.wait_connected()
    assert await ready(started) == (200, {"status": "ready"})
    assert await live(started) == ALIVE
    assert (await started.http.get("/api/v1/subscriptions")).status_code == 401
