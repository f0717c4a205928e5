"""The HTTP API through the running service: uvicorn on a loopback port in the test's
event loop, the simulator over a real WebSocket, a real redis-server. Bodies and status
codes are the spec's contract; bad input gets a 4xx that names it, never a 500."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from apps.simulator import AlpacaSimulator
from libs.redis_client import RedisClient, RedisConnectionParams
from tests.fixtures.redis import RedisFactory, closed_port
from tests.fixtures.service import SIM_KEY, SIM_SECRET, Service, ServiceFactory, free_port
from tests.helpers import eventually, listen_prices, quote

# The harness (``service``, ``start_service``) is tests/fixtures/service.py.
__all__ = ["cached_price", "error_text", "wait_cached"]


async def cached_price(params: RedisConnectionParams, symbol: str) -> dict[str, Any] | None:
    client = RedisClient(params=params)
    try:
        raw = await client.get(f"price:{symbol}")
    finally:
        await client.close()
    return None if raw is None else json.loads(raw)


async def wait_cached(
    params: RedisConnectionParams, symbol: str, predicate: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        found = await cached_price(params, symbol)
        if found is not None and predicate(found):
            return found
        assert asyncio.get_running_loop().time() < deadline, f"price:{symbol} never matched"
        await asyncio.sleep(0.02)


def error_text(reply: httpx.Response) -> str:
    """The whole error body as text (a problem details body: ``detail``, maybe ``errors``)."""
    assert reply.headers["content-type"] == "application/problem+json", reply.headers
    return reply.text


# -- health ------------------------------------------------------------------------------


async def test_health_has_the_spec_fields_and_reports_healthy_once_connected(
    service: Service,
) -> None:
    reply = await service.http.get("/health")
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    body = reply.json()
    assert body["status"] == "healthy"
    assert body["service"] == "market-data-service"
    assert body["websocket_connected"] is True
    assert body["redis_connected"] is True
    assert body["state"] == "connected"
    assert body["reason"] is None
    for name in ("subscribed_symbols", "reconnect_attempts", "max_reconnect_attempts"):
        assert type(body[name]) is int, name
    assert body["subscribed_symbols"] == 0
    assert body["reconnect_attempts"] == 0
    assert body["max_reconnect_attempts"] == 10
    assert isinstance(body["stats"], dict)


async def test_health_counts_subscribed_symbols(service: Service) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL", "MSFT"]})
    assert reply.status_code == 201
    body = await service.health()
    assert body["subscribed_symbols"] == 2
    assert body["status"] == "healthy"


async def test_health_before_connecting_is_degraded_not_an_error(
    start_service: ServiceFactory, simulator: AlpacaSimulator
) -> None:
    await simulator.stop()  # nothing listens: the stream keeps retrying
    started = await start_service(max_reconnect_attempts=1000)
    body = await started.wait_health(
        lambda b: b["state"] in ("reconnecting", "connecting"), "a reconnecting stream"
    )
    assert body["_status_code"] == 200
    assert body["status"] == "degraded"
    assert body["websocket_connected"] is False
    assert body["reason"]


async def test_health_after_refused_credentials_is_503_naming_the_code(
    start_service: ServiceFactory,
) -> None:
    wrong = "wrong-secret-value-123"
    started = await start_service(alpaca_secret_key=wrong)
    body = await started.wait_health(lambda b: b["status"] != "degraded", "the stream to fail")
    assert body["_status_code"] == 503
    assert body["status"] == "unhealthy"
    assert body["websocket_connected"] is False
    assert body["state"] == "failed"
    assert "402" in body["reason"]
    reply = await started.http.get("/health")
    assert wrong not in reply.text
    assert SIM_KEY not in reply.text


async def test_health_after_giving_up_reconnecting_is_503(
    start_service: ServiceFactory, simulator: AlpacaSimulator
) -> None:
    await simulator.stop()
    started = await start_service(max_reconnect_attempts=2)
    body = await started.wait_health(lambda b: b["state"] == "failed", "the stream to give up")
    assert body["_status_code"] == 503
    assert body["status"] == "unhealthy"
    assert "gave up after 2 reconnect attempts" in body["reason"]
    assert body["max_reconnect_attempts"] == 2


async def test_health_follows_a_redis_outage_and_recovery(
    start_service: ServiceFactory, simulator: AlpacaSimulator, redis_factory: RedisFactory
) -> None:
    server = redis_factory()
    started = await start_service(redis_host=server.host, redis_port=server.port)
    await started.wait_connected()
    reply = await started.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})
    assert reply.status_code == 201
    server.kill()  # a crash: restart() brings it back on the same port
    # The outage is noticed when the sink next writes.
    await simulator.send_quotes([quote("AAPL", "10.00", "10.02")])
    body = await started.wait_health(lambda b: not b["redis_connected"], "Redis to be missed")
    assert body["_status_code"] == 200
    assert body["status"] == "degraded"
    await asyncio.to_thread(server.restart)
    await started.wait_connected()
    # The newest price written during the outage lands once Redis is back.
    await wait_cached(server.params, "AAPL", lambda p: p["mid"] == "10.01")


async def test_health_when_redis_is_unreachable_is_degraded(
    start_service: ServiceFactory, simulator: AlpacaSimulator
) -> None:
    started = await start_service(redis_port=closed_port())
    body = await started.wait_health(lambda b: b["websocket_connected"], "the stream to connect")
    assert body["_status_code"] == 200
    assert body["status"] == "degraded"
    assert body["redis_connected"] is False
    assert "redis" in body["reason"].lower()
    # The API keeps working without Redis.
    reply = await started.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})
    assert reply.status_code == 201
    await simulator.send_quotes([quote("AAPL", "150.00", "150.10")])
    body = await started.health()
    assert body["status"] == "degraded"


async def test_health_with_a_wrong_redis_password_never_shows_it(
    start_service: ServiceFactory, redis_factory: RedisFactory
) -> None:
    server = redis_factory(password="right-redis-password")
    wrong = "wrong-redis-password-789"
    started = await start_service(
        redis_host=server.host, redis_port=server.port, redis_password=wrong
    )
    body = await started.wait_health(lambda b: b["websocket_connected"], "the stream to connect")
    assert body["status"] == "degraded"
    assert body["redis_connected"] is False
    reply = await started.http.get("/health")
    assert wrong not in reply.text
    assert "right-redis-password" not in reply.text


# -- subscribe -----------------------------------------------------------------------------


async def test_subscribe_answers_201_with_the_spec_body(
    service: Service, simulator: AlpacaSimulator
) -> None:
    reply = await service.http.post(
        "/api/v1/subscribe", json={"symbols": ["AAPL", "MSFT", "GOOGL"]}
    )
    assert reply.status_code == 201
    assert reply.json() == {
        "message": "Successfully subscribed to 3 symbols",
        "subscribed_symbols": ["AAPL", "MSFT", "GOOGL"],
        "total_subscriptions": 3,
    }
    # Confirmed by the broker before the answer came.
    assert simulator.subscribed_quotes == {"AAPL", "MSFT", "GOOGL"}


async def test_subscribe_normalises_case_and_whitespace(
    service: Service, simulator: AlpacaSimulator
) -> None:
    reply = await service.http.post(
        "/api/v1/subscribe", json={"symbols": ["aapl", " msft ", "brk.b"]}
    )
    assert reply.status_code == 201
    assert reply.json()["subscribed_symbols"] == ["AAPL", "MSFT", "BRK.B"]
    assert simulator.subscribed_quotes == {"AAPL", "MSFT", "BRK.B"}


async def test_subscribe_filters_duplicates(service: Service, simulator: AlpacaSimulator) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL", "aapl", "AAPL"]})
    assert reply.status_code == 201
    assert reply.json() == {
        "message": "Successfully subscribed to 1 symbols",
        "subscribed_symbols": ["AAPL"],
        "total_subscriptions": 1,
    }
    # Subscribing again to what is already subscribed is not an error and adds nothing.
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL", "TSLA"]})
    assert reply.status_code == 201
    assert reply.json()["subscribed_symbols"] == ["AAPL", "TSLA"]
    assert reply.json()["total_subscriptions"] == 2
    subs = (await service.http.get("/api/v1/subscriptions")).json()
    assert subs == {
        "symbols": ["AAPL", "TSLA"],
        "count": 2,
        "sources": {"AAPL": ["manual"], "TSLA": ["manual"]},
    }
    assert simulator.subscribed_quotes == {"AAPL", "TSLA"}


async def test_subscribe_accepts_exactly_100_symbols(service: Service) -> None:
    symbols = [f"S{i:03d}" for i in range(100)]
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": symbols})
    assert reply.status_code == 201
    assert reply.json()["total_subscriptions"] == 100


async def test_quotes_land_in_redis_with_exact_decimals(
    service: Service, simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    reply = await service.http.post(
        "/api/v1/subscribe", json={"symbols": ["AAPL", "MSFT", "GOOGL"]}
    )
    assert reply.status_code == 201
    async with listen_prices(redis_params) as listener:
        await simulator.send_quotes(
            [
                quote("AAPL", "150.00", "150.10", t="2024-07-24T07:56:53.639713735Z"),
                quote("MSFT", "420.1234", "420.1236"),
                quote("GOOGL", "0.0001", "0.0003"),
            ]
        )
        aapl = await wait_cached(redis_params, "AAPL", lambda p: p["bid"] == "150.00")
        await eventually(lambda: len(listener.events) == 3, what="three events")
    assert aapl["symbol"] == "AAPL"
    assert (aapl["bid"], aapl["ask"], aapl["mid"]) == ("150.00", "150.10", "150.05")
    assert (aapl["bid_size"], aapl["ask_size"]) == (1, 2)
    assert aapl["timestamp"] == "2024-07-24T07:56:53.639713735Z"
    msft = await cached_price(redis_params, "MSFT")
    assert msft is not None
    assert (msft["bid"], msft["ask"], msft["mid"]) == ("420.1234", "420.1236", "420.1235")
    googl = await cached_price(redis_params, "GOOGL")
    assert googl is not None
    assert googl["mid"] == "0.0002"
    assert listener.prices("AAPL") == ["150.05"]
    assert listener.prices("MSFT") == ["420.1235"]
    client = RedisClient(params=redis_params)
    try:
        # Milliseconds: TTL's seconds are rounded, PTTL's are not.
        ttl_ms = await client.redis.pttl("price:AAPL")
    finally:
        await client.close()
    assert 0 < ttl_ms <= 300_000


# -- subscriptions and unsubscribe ----------------------------------------------------------


async def test_subscriptions_are_sorted_with_a_count(service: Service) -> None:
    empty = {"symbols": [], "count": 0, "sources": {}}
    assert (await service.http.get("/api/v1/subscriptions")).json() == empty
    reply = await service.http.post(
        "/api/v1/subscribe", json={"symbols": ["MSFT", "googl", "AAPL"]}
    )
    assert reply.status_code == 201
    reply = await service.http.get("/api/v1/subscriptions")
    assert reply.status_code == 200
    assert reply.json() == {
        "symbols": ["AAPL", "GOOGL", "MSFT"],
        "count": 3,
        "sources": {"AAPL": ["manual"], "GOOGL": ["manual"], "MSFT": ["manual"]},
    }


async def test_unsubscribe_answers_200_then_404(
    service: Service, simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    reply = await service.http.post(
        "/api/v1/subscribe", json={"symbols": ["AAPL", "MSFT", "GOOGL"]}
    )
    assert reply.status_code == 201
    reply = await service.http.delete("/api/v1/subscribe/aapl")
    assert reply.status_code == 200
    assert reply.json() == {
        "message": "Successfully unsubscribed from AAPL",
        "remaining_subscriptions": 2,
    }
    assert simulator.subscribed_quotes == {"MSFT", "GOOGL"}
    assert (await service.http.get("/api/v1/subscriptions")).json() == {
        "symbols": ["GOOGL", "MSFT"],
        "count": 2,
        "sources": {"GOOGL": ["manual"], "MSFT": ["manual"]},
    }
    reply = await service.http.delete("/api/v1/subscribe/AAPL")
    assert reply.status_code == 404
    assert "AAPL" in error_text(reply)
    reply = await service.http.delete("/api/v1/subscribe/TSLA")
    assert reply.status_code == 404
    assert "TSLA" in error_text(reply)

    # Quotes still arriving for the dropped symbol are not cached.
    await simulator.send_quotes([quote("AAPL", "1.00", "1.02")])
    await simulator.send_quotes([quote("MSFT", "420.00", "420.02")])
    await wait_cached(redis_params, "MSFT", lambda p: p["mid"] == "420.01")
    assert await cached_price(redis_params, "AAPL") is None


async def test_unsubscribe_a_symbol_with_a_slash(service: Service) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["BTC/USD", "AAPL"]})
    assert reply.status_code == 201
    reply = await service.http.delete("/api/v1/subscribe/btc/usd")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "message": "Successfully unsubscribed from BTC/USD",
        "remaining_subscriptions": 1,
    }
    reply = await service.http.delete("/api/v1/subscribe/BTC%2FUSD")
    assert reply.status_code == 404
    assert "BTC/USD" in error_text(reply)


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"symbols": []}, "symbols"),
        ({"symbols": ["AAPL", "bad symbol!"]}, "bad symbol!"),
        ({"symbols": "AAPL"}, "symbols"),
        ({"symbols": ["AAPL", ""]}, "empty"),
        ({"symbols": ["AAPL", "TOOLONGTOBEATICKERSYMBOL"]}, "TOOLONGTOBEATICKERSYMBOL"),
        ({"symbols": ["AAPL", 123]}, "123"),
        ({"symbols": ["AAPL", None]}, "symbols"),
        ({"symbols": [["AAPL"]]}, "symbols"),
        ({"symbol": ["AAPL"]}, "symbols"),
        (["AAPL"], "body"),
        ({"symbols": [f"S{i:03d}" for i in range(101)]}, "100"),
    ],
    ids=[
        "empty-list",
        "bad-ticker",
        "string-not-list",
        "empty-ticker",
        "too-long",
        "number",
        "null",
        "nested-list",
        "wrong-field",
        "array-body",
        "101-symbols",
    ],
)
async def test_bad_subscribe_body_is_422_naming_the_problem(
    service: Service, simulator: AlpacaSimulator, body: Any, named: str
) -> None:
    reply = await service.http.post("/api/v1/subscribe", json=body)
    assert reply.status_code == 422, reply.text
    assert named in error_text(reply)
    # Nothing reached the broker or the subscription set.
    assert simulator.subscribed_quotes == frozenset()
    assert (await service.http.get("/api/v1/subscriptions")).json()["count"] == 0


async def test_missing_or_non_json_body_is_422(service: Service) -> None:
    reply = await service.http.post("/api/v1/subscribe")
    assert reply.status_code == 422
    assert reply.json()["detail"] == "body: a JSON body is required"
    reply = await service.http.post(
        "/api/v1/subscribe",
        content=b"symbols=AAPL",
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 422
    reply = await service.http.post(
        "/api/v1/subscribe", content=b'{"symbols": ["AAPL"', headers={"content-type": "text/plain"}
    )
    assert reply.status_code == 422
    # Bytes that are not even text: FastAPI answers 400 before validation (still a 4xx).
    reply = await service.http.post(
        "/api/v1/subscribe", content=b"\xff\xfe\x00", headers={"content-type": "application/json"}
    )
    assert reply.status_code == 400
    assert reply.json()["code"] == "invalid_json"
    assert "UTF-8 JSON" in reply.json()["detail"]


@pytest.mark.parametrize(
    ("path", "named"),
    [
        ("/api/v1/subscribe/%20", "' '"),
        ("/api/v1/subscribe/bad%20symbol", "bad symbol"),
        ("/api/v1/subscribe/AAPL!", "AAPL!"),
        ("/api/v1/subscribe/" + "A" * 21, "A" * 21),
        ("/api/v1/subscribe/" + "A" * 65, "A" * 65),
        ("/api/v1/subscribe/" + "A" * 1000, "at most 20 characters"),
    ],
    ids=["blank", "space", "punctuation", "21-chars", "65-chars", "1000-chars"],
)
async def test_bad_unsubscribe_symbol_is_422_naming_it(
    service: Service, path: str, named: str
) -> None:
    reply = await service.http.delete(path)
    assert reply.status_code == 422, reply.text
    assert named in error_text(reply)


async def test_unknown_routes_and_methods_are_4xx(service: Service) -> None:
    assert (await service.http.get("/api/v1/nothing")).status_code == 404
    assert (await service.http.get("/api/v1/subscribe")).status_code == 405
    assert (await service.http.put("/api/v1/subscriptions")).status_code == 405


# -- broker refusals -----------------------------------------------------------------------


async def test_broker_refusal_is_409_naming_the_refused_symbols(
    service: Service, simulator: AlpacaSimulator
) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL", "MSFT"]})
    assert reply.status_code == 201
    simulator.reject_next_subscribe(405)
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["TSLA", "AAPL", "NVDA"]})
    assert reply.status_code == 409, reply.text
    body = reply.json()
    assert body["refused_symbols"] == ["NVDA", "TSLA"]
    assert "405" in body["detail"]
    assert body["total_subscriptions"] == 2
    # The earlier subscriptions stand, here and at the broker; the service stays healthy.
    subs = (await service.http.get("/api/v1/subscriptions")).json()
    assert subs == {
        "symbols": ["AAPL", "MSFT"],
        "count": 2,
        "sources": {"AAPL": ["manual"], "MSFT": ["manual"]},
    }
    assert simulator.subscribed_quotes == {"AAPL", "MSFT"}
    health = await service.health()
    assert health["status"] == "healthy"
    assert health["subscribed_symbols"] == 2
    # The next subscribe goes through.
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["TSLA"]})
    assert reply.status_code == 201
    assert reply.json()["total_subscriptions"] == 3


@pytest.mark.parametrize("code", [406, 407, 500])
async def test_other_broker_errors_are_502_naming_them_never_500(
    service: Service, simulator: AlpacaSimulator, code: int
) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})
    assert reply.status_code == 201
    simulator.reject_next_subscribe(code)
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["TSLA"]})
    assert reply.status_code == 502, reply.text
    assert str(code) in reply.json()["detail"]
    assert "AAPL" in (await service.http.get("/api/v1/subscriptions")).json()["symbols"]
    assert simulator.subscribed_quotes == {"AAPL"}


# -- secrets, docs -------------------------------------------------------------------------


async def test_secrets_never_appear_in_responses(service: Service) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})
    assert reply.status_code == 201
    for path in ("/health", "/openapi.json", "/api/v1/subscriptions", "/docs"):
        reply = await service.http.get(path)
        assert reply.status_code == 200, path
        assert SIM_SECRET not in reply.text, path
        assert SIM_KEY not in reply.text, path
    # Nor in the 422 answers.
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["x y"]})
    assert SIM_SECRET not in reply.text


async def test_docs_and_openapi_are_served(service: Service) -> None:
    reply = await service.http.get("/docs")
    assert reply.status_code == 200
    assert "text/html" in reply.headers["content-type"]
    assert "swagger" in reply.text.lower()
    reply = await service.http.get("/openapi.json")
    assert reply.status_code == 200
    paths = reply.json()["paths"]
    assert set(paths) >= {
        "/health",
        "/api/v1/subscribe",
        "/api/v1/subscribe/{symbol}",
        "/api/v1/subscriptions",
    }
    assert "201" in paths["/api/v1/subscribe"]["post"]["responses"]
    assert "404" in paths["/api/v1/subscribe/{symbol}"]["delete"]["responses"]


# -- lifecycle -----------------------------------------------------------------------------


async def test_shutdown_closes_the_broker_connection(
    start_service: ServiceFactory, simulator: AlpacaSimulator
) -> None:
    started = await start_service()
    await started.wait_connected()
    assert simulator.open_connections == 1
    await started.http.aclose()
    started.server.should_exit = True
    async with asyncio.timeout(10):
        await started.task
    await eventually(lambda: simulator.open_connections == 0, what="the socket closed")
    with contextlib.suppress(Exception):
        await started.http.aclose()


# -- a bare uvicorn with a settings mistake --------------------------------------------------


async def run_to_exit(*argv: str, cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(30):
            out, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def bare_env(**settings: str) -> dict[str, str]:
    """The environment of a fresh shell: no ALPACA_* or any other setting but ``settings``."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")
    return {name: os.environ[name] for name in keep if name in os.environ} | settings


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({}, "missing settings: ALPACA_API_KEY, ALPACA_SECRET_KEY"),
        (
            {"ALPACA_API_KEY": "k", "ALPACA_SECRET_KEY": "s", "PRICE_CACHE_TTL": "-5"},
            "invalid setting PRICE_CACHE_TTL",
        ),
    ],
    ids=["no-keys", "bad-setting"],
)
@pytest.mark.timeout(60)
async def test_bare_uvicorn_with_a_settings_mistake_prints_one_line_not_a_traceback(
    tmp_path: Path, settings: dict[str, str], named: str
) -> None:
    # An empty directory: no .env to read.
    code, out, err = await run_to_exit(
        sys.executable,
        "-m",
        "uvicorn",
        "apps.market_data_service.main:app",
        "--port",
        str(free_port()),
        cwd=tmp_path,
        env=bare_env(**settings),
    )
    assert code == 1, (out, err)
    assert "Traceback" not in out + err
    lines = err.splitlines()
    assert lines[0].startswith("market-data: ")
    assert named in lines[0]
    assert len(lines) <= 2, err  # the message, and where to set the settings
    assert "make demo" in err
    # `market-data serve` says the same.
    market_data = Path(sys.executable).with_name("market-data")
    _, _, serve_err = await run_to_exit(
        str(market_data), "serve", cwd=tmp_path, env=bare_env(**settings)
    )
    assert serve_err.splitlines()[0] == lines[0]
