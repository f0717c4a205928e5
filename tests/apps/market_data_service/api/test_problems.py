"""Strict requests and one error body: every 4xx and 5xx answer of the running service is
RFC 9457 problem details (``application/problem+json``) with a one-line ``detail`` and a
machine-readable ``code``; unknown body fields are refused by name.

The service runs on the shared harness (uvicorn in the test's loop, the simulator over a
real WebSocket, a real redis-server); the unexpected-500 case serves an app with one
extra failing route the same way.
"""

from __future__ import annotations

import http
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from apps.market_data_service.main import create_app
from apps.simulator import AlpacaSimulator
from libs.redis_client import RedisConnectionParams
from tests.fixtures.redis import closed_port
from tests.fixtures.service import Service, ServiceFactory, serve_app, service_settings, stop_app

# Machine noise that must never reach a person's one-line detail.
NOISE = ("Value error, ", "ctx", "Input should be", "{'type'", "\n", "loc")


def problem(reply: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The reply's problem details body, checked for the format's rules."""
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json", reply.headers
    body: dict[str, Any] = reply.json()
    assert body["type"] == "about:blank"
    assert body["title"] == http.HTTPStatus(status).phrase
    assert body["status"] == status
    assert body["code"] == code, body
    detail = body["detail"]
    assert isinstance(detail, str)
    assert detail.strip()
    for noise in NOISE:
        assert noise not in detail, (noise, detail)
    if "errors" in body:
        assert len(body["errors"]) > 1  # only when there are several
        for error in body["errors"]:
            assert set(error) == {"location", "message"}
            assert "\n" not in error["message"]
    return body


async def nothing_subscribed(service: Service, simulator: AlpacaSimulator) -> None:
    assert simulator.subscribed_quotes == frozenset()
    assert (await service.get("/api/v1/subscriptions"))["count"] == 0


# -- validation ----------------------------------------------------------------------------------


async def test_an_unknown_body_field_is_a_422_naming_it(
    service: Service, simulator: AlpacaSimulator
) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["IBM"], "bars": ["IBM"]})
    assert problem(reply, 422, "unknown_field") == {
        "type": "about:blank",
        "title": "Unprocessable Entity",
        "status": 422,
        "detail": "body.bars: unknown field 'bars' (the body takes: symbols, channels)",
        "code": "unknown_field",
    }
    await nothing_subscribed(service, simulator)


async def test_one_bad_symbol_is_one_line_with_its_location(
    service: Service, simulator: AlpacaSimulator
) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL", "bad symbol!"]})
    body = problem(reply, 422, "invalid_symbol")
    assert body["detail"] == (
        "body.symbols[1]: invalid symbol 'bad symbol!': only letters, digits, '.' and '/' "
        "are allowed, starting with a letter or digit"
    )
    assert "errors" not in body
    await nothing_subscribed(service, simulator)


async def test_several_problems_are_listed_each_with_its_location(
    service: Service, simulator: AlpacaSimulator
) -> None:
    reply = await service.http.post(
        "/api/v1/subscribe", json={"symbols": ["AAPL", "bad one", 7], "bars": 1}
    )
    body = problem(reply, 422, "invalid_request")  # the problems are of different kinds
    assert body["detail"].startswith("3 problems: ")
    errors = {e["location"]: e["message"] for e in body["errors"]}
    assert set(errors) == {"body.symbols[1]", "body.symbols[2]", "body.bars"}
    assert errors["body.symbols[1]"].startswith("invalid symbol 'bad one': ")
    assert errors["body.symbols[2]"] == "invalid symbol 7: must be a string"
    assert errors["body.bars"] == "unknown field 'bars' (the body takes: symbols, channels)"
    # Problems of one kind share its code.
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["a b", "c d"]})
    body = problem(reply, 422, "invalid_symbol")
    assert [e["location"] for e in body["errors"]] == ["body.symbols[0]", "body.symbols[1]"]
    await nothing_subscribed(service, simulator)


async def test_many_problems_keep_the_detail_short(service: Service) -> None:
    reply = await service.http.post(
        "/api/v1/subscribe", json={"symbols": [f"bad {i}" for i in range(10)]}
    )
    body = problem(reply, 422, "invalid_symbol")
    assert len(body["errors"]) == 10
    assert body["detail"].startswith("10 problems: body.symbols[0]: ")
    assert body["detail"].endswith("; and 7 more (see errors)")


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        ({"symbols": []}, "invalid_request", "body.symbols: needs at least 1 item(s), got 0"),
        (
            {"symbols": [f"S{i:03d}" for i in range(101)]},
            "invalid_request",
            "body.symbols: takes at most 100 items, got 101",
        ),
        ({"symbols": "AAPL"}, "invalid_request", "body.symbols: must be a valid list, got 'AAPL'"),
        (["AAPL"], "invalid_request", "body: must be a JSON object, got an array"),
        (
            {"symbols": ["AAPL", ""]},
            "invalid_symbol",
            "body.symbols[1]: invalid symbol '': is empty",
        ),
        (
            {"symbols": ["A" * 500]},
            "invalid_symbol",
            "body.symbols[0]: invalid symbol 'AAAAAAAAAAAAAAAAAAAA'... (500 characters): "
            "longer than 20 characters",
        ),
    ],
    ids=["empty-list", "101-symbols", "string", "array-body", "empty-ticker", "500-chars"],
)
async def test_validation_details_are_readable(
    service: Service, body: Any, code: str, detail: str
) -> None:
    reply = await service.http.post("/api/v1/subscribe", json=body)
    assert problem(reply, 422, code)["detail"] == detail


async def test_unreadable_bodies_are_problems(service: Service) -> None:
    reply = await service.http.post("/api/v1/subscribe")
    assert problem(reply, 422, "invalid_request")["detail"] == "body: a JSON body is required"
    reply = await service.http.post(
        "/api/v1/subscribe",
        content=b'{"symbols": ["AAPL"',
        headers={"content-type": "application/json"},
    )
    detail = problem(reply, 422, "invalid_json")["detail"]
    assert detail.startswith("body: not valid JSON at character 19: ")
    reply = await service.http.post(
        "/api/v1/subscribe",
        content=b'{"symbols": ["AAPL"]}',
        headers={"content-type": "text/plain"},
    )
    detail = problem(reply, 422, "invalid_json")["detail"]
    assert detail == "body: must be JSON, sent with Content-Type: application/json"
    reply = await service.http.post(
        "/api/v1/subscribe", content=b"\xff\xfe\x00", headers={"content-type": "application/json"}
    )
    assert "UTF-8 JSON" in problem(reply, 400, "invalid_json")["detail"]


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        (
            "/api/v1/subscribe/AAPL!",
            "path.symbol: invalid symbol 'AAPL!': only letters, digits, '.' and '/' are "
            "allowed, starting with a letter or digit",
        ),
        (
            "/api/v1/prices/" + "B" * 21,
            f"path.symbol: at most 20 characters, got 21: '{'B' * 21}'",
        ),
        (
            "/api/v1/subscribe/" + "C" * 1000,
            "path.symbol: at most 20 characters, got 1000: 'CCCCCCCCCCCCCCCCCCCC'... "
            "(1000 characters)",
        ),
    ],
    ids=["punctuation", "21-chars", "1000-chars"],
)
async def test_path_errors_are_problems(service: Service, path: str, detail: str) -> None:
    method = "DELETE" if "subscribe" in path else "GET"
    reply = await service.http.request(method, path)
    assert problem(reply, 422, "invalid_symbol")["detail"] == detail


async def test_query_errors_are_problems(service: Service) -> None:
    reply = await service.http.get("/api/v1/prices")
    assert problem(reply, 422, "invalid_request")["detail"] == "query.symbols: is required"
    reply = await service.http.get("/api/v1/prices?symbols=AAPL,bad%20one")
    detail = problem(reply, 422, "invalid_symbol")["detail"]
    assert detail.startswith("query.symbols: invalid symbol 'bad one': ")


# -- HTTP errors -----------------------------------------------------------------------------------


async def test_unknown_routes_and_methods_are_problems(service: Service) -> None:
    reply = await service.http.get("/api/v1/nothing")
    detail = problem(reply, 404, "not_found")["detail"]
    assert detail == "no endpoint GET /api/v1/nothing; the API is listed at /docs"
    reply = await service.http.get("/api/v1/subscribe")
    detail = problem(reply, 405, "method_not_allowed")["detail"]
    assert detail == "GET is not allowed on /api/v1/subscribe; allowed: POST"
    assert reply.headers["allow"] == "POST"


async def test_not_subscribed_is_a_404_problem(service: Service) -> None:
    reply = await service.http.delete("/api/v1/subscribe/TSLA")
    assert problem(reply, 404, "not_found")["detail"] == "not subscribed to TSLA"
    reply = await service.http.get("/api/v1/prices/TSLA")
    detail = problem(reply, 404, "not_found")["detail"]
    assert detail.startswith("no fresh price for TSLA: it is not subscribed")


async def test_a_broker_refusal_is_a_409_problem_with_the_refused_symbols(
    service: Service, simulator: AlpacaSimulator
) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})
    assert reply.status_code == 201
    simulator.reject_next_subscribe(405)
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["TSLA", "NVDA"]})
    body = problem(reply, 409, "subscription_refused")
    assert set(body) == {
        "type",
        "title",
        "status",
        "detail",
        "code",
        "refused_symbols",
        "total_subscriptions",
    }
    assert body["refused_symbols"] == ["NVDA", "TSLA"]
    assert body["total_subscriptions"] == 1
    assert "405" in body["detail"]


async def test_other_broker_errors_are_502_problems(
    service: Service, simulator: AlpacaSimulator
) -> None:
    simulator.reject_next_subscribe(500)
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["TSLA"]})
    detail = problem(reply, 502, "broker_error")["detail"]
    assert detail.startswith("the market data broker answered with an error: ")
    assert "500" in detail


async def test_redis_unreachable_is_a_503_problem(start_service: ServiceFactory) -> None:
    started = await start_service(redis_port=closed_port())
    reply = await started.http.get("/api/v1/prices/AAPL")
    detail = problem(reply, 503, "redis_unavailable")["detail"]
    assert detail.startswith("cannot read prices: ")


async def test_an_unexpected_error_is_a_500_problem_without_internals(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    app = create_app(service_settings(simulator, redis_params))
    broken = APIRouter()

    @broken.get("/api/v1/broken")
    async def fails() -> None:
        raise RuntimeError("internal state: token=not-for-clients")

    app.include_router(broken)
    server, task, url = await serve_app(app, log_level="critical")
    try:
        async with httpx.AsyncClient(base_url=url) as http_client:
            reply = await http_client.get("/api/v1/broken")
    finally:
        await stop_app(server, task)
    body = problem(reply, 500, "internal_error")
    assert body["detail"] == "an unexpected error occurred; it was logged on the server"
    assert "not-for-clients" not in reply.text
    assert "RuntimeError" not in reply.text
