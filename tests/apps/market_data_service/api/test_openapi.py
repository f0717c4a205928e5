"""The OpenAPI document is complete: every operation summarised and described, every
field of every schema described, every error answer declared with its problem details
body, decimals as patterned strings, the health counters typed.

Read from the running service's app (``app.openapi()``, what ``/openapi.json`` serves),
with and without an API key: the document differs between the two (the 401s).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fastapi.routing import APIRoute, iter_route_contexts

from apps.market_data_service.api.errors import PROBLEM_MEDIA_TYPE
from apps.market_data_service.api.schemas import DECIMAL_PATTERN, HealthStats, PriceResponse
from apps.market_data_service.api.security import PUBLIC_PATHS
from apps.market_data_service.main import create_app
from apps.simulator import AlpacaSimulator
from libs.market_data import PriceData
from libs.market_data.symbols import MAX_SYMBOL_LENGTH
from tests.fixtures.service import Service, ServiceFactory
from tests.helpers import eventually, quote

API_KEY = "openapi-api-key-0f1e2d3c4b5a6978"
PROBLEM_SCHEMAS = {"Problem", "SubscriptionRefused"}


@pytest.fixture(params=["open", "api-key"])
async def document(request: pytest.FixtureRequest, start_service: ServiceFactory) -> dict[str, Any]:
    overrides = {"market_data_api_key": API_KEY} if request.param == "api-key" else {}
    started = await start_service(**overrides)
    schema: dict[str, Any] = started.app.openapi()
    # What the service serves is that document.
    served = await started.http.get("/openapi.json", headers={"X-API-Key": API_KEY})
    assert served.json() == json.loads(json.dumps(schema))
    return schema


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method.upper(), operation


def ref_name(media: dict[str, Any]) -> str:
    return str(media.get("schema", {}).get("$ref", "")).rsplit("/", 1)[-1]


def test_every_operation_has_a_summary_and_a_description(document: dict[str, Any]) -> None:
    found = list(operations(document))
    assert len(found) >= 10
    for path, method, operation in found:
        assert operation.get("summary", "").strip(), (method, path)
        assert operation.get("description", "").strip(), (method, path)


def test_every_summary_is_written_not_made_from_the_function_name() -> None:
    # FastAPI makes a summary from the function name ("Latest Price") when none is given.
    contexts = iter_route_contexts(create_app().routes)  # through the included routers
    routes = [c.original_route for c in contexts if isinstance(c.original_route, APIRoute)]
    assert len(routes) >= 10
    for route in routes:
        assert route.summary, route.path
        assert route.summary != route.name.replace("_", " ").title(), route.path


def test_every_property_of_every_schema_is_described(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document["components"]["schemas"]
    # FastAPI's own validation error shapes are gone: 422s are problem details too.
    assert not {"HTTPValidationError", "ValidationError"} & set(schemas)
    undescribed = [
        f"{name}.{field}"
        for name, schema in schemas.items()
        for field, prop in schema.get("properties", {}).items()
        if not str(prop.get("description", "")).strip()
    ]
    assert not undescribed
    for name, schema in schemas.items():
        assert str(schema.get("description", "")).strip(), name


def test_every_error_answer_is_declared_with_a_problem_body(document: dict[str, Any]) -> None:
    for path, method, operation in operations(document):
        responses: dict[str, Any] = operation["responses"]
        # An unexpected failure is possible anywhere, and declared.
        assert "500" in responses, (method, path)
        if operation.get("parameters") or operation.get("requestBody"):
            assert "422" in responses, (method, path)
        for status, response in responses.items():
            if int(status) < 400:
                continue
            content: dict[str, Any] = response.get("content", {})
            assert content, (method, path, status)
            for media_type, media in content.items():
                assert media.get("schema"), (method, path, status)
                if (path, status) == ("/health", "503"):  # /health keeps its own body
                    assert ref_name(media) == "HealthResponse"
                    continue
                assert media_type == PROBLEM_MEDIA_TYPE, (method, path, status)
                assert ref_name(media) in PROBLEM_SCHEMAS, (method, path, status)


def test_the_api_key_answers_are_declared_where_the_key_is_needed(
    document: dict[str, Any],
) -> None:
    keyed = "securitySchemes" in document.get("components", {})
    for path, method, operation in operations(document):
        needs_key = keyed and path not in PUBLIC_PATHS
        assert ("401" in operation["responses"]) == needs_key, (method, path)
        if needs_key:
            content = operation["responses"]["401"]["content"]
            assert ref_name(content[PROBLEM_MEDIA_TYPE]) == "Problem"


def test_the_documented_errors_of_each_operation(document: dict[str, Any]) -> None:
    def declared(path: str, method: str) -> set[str]:
        responses = document["paths"][path][method]["responses"]
        return {s for s in responses if int(s) >= 400} - {"401", "500"}

    assert declared("/api/v1/subscribe", "post") == {"400", "409", "422", "502"}
    assert declared("/api/v1/subscribe/{symbol}", "delete") == {"404", "422", "502"}
    assert declared("/api/v1/prices/{symbol}", "get") == {"404", "422", "503"}
    assert declared("/api/v1/prices", "get") == {"422", "503"}
    assert declared("/api/v1/positions/pnl/realtime", "get") == {"502"}
    assert declared("/health/ready", "get") == {"503"}
    assert declared("/health", "get") == {"503"}
    assert declared("/health/live", "get") == set()
    refused = document["paths"]["/api/v1/subscribe"]["post"]["responses"]["409"]
    assert ref_name(refused["content"][PROBLEM_MEDIA_TYPE]) == "SubscriptionRefused"
    extension = document["components"]["schemas"]["SubscriptionRefused"]["properties"]
    assert {"refused_symbols", "total_subscriptions", "detail", "code"} <= set(extension)


def test_symbol_parameters_follow_the_ticker_rule(document: dict[str, Any]) -> None:
    for path in ("/api/v1/subscribe/{symbol}", "/api/v1/prices/{symbol}"):
        (operation,) = document["paths"][path].values()
        (parameter,) = [p for p in operation["parameters"] if p["in"] == "path"]
        assert parameter["name"] == "symbol"
        assert parameter["schema"]["maxLength"] == MAX_SYMBOL_LENGTH == 20, path
        assert parameter["schema"]["pattern"], path
        assert parameter["description"], path


def test_request_bodies_refuse_unknown_fields(document: dict[str, Any]) -> None:
    body = document["components"]["schemas"]["SubscribeRequest"]
    assert body["additionalProperties"] is False


def _decimal_fields(schemas: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = {}
    for name, schema in schemas.items():
        for field, prop in schema.get("properties", {}).items():
            for variant in [prop, *prop.get("anyOf", [])]:
                if variant.get("pattern") == DECIMAL_PATTERN:
                    found[f"{name}.{field}"] = prop
    return found


def test_decimals_are_strings_with_a_pattern_and_an_example(document: dict[str, Any]) -> None:
    fields = _decimal_fields(document["components"]["schemas"])
    assert {
        "PriceResponse.bid",
        "PriceResponse.ask",
        "PriceResponse.mid",
        "PositionPnLItem.qty",
        "PositionPnLItem.avg_entry_price",
        "PositionPnLItem.current_price",
        "PositionPnLItem.unrealized_pl",
        "RealtimePnLTotals.total_market_value",
    } <= set(fields)
    for name, prop in fields.items():
        variants = [prop, *prop.get("anyOf", [])]
        assert any(v.get("type") == "string" for v in variants), name
        examples = prop.get("examples") or [e for v in variants for e in v.get("examples", [])]
        assert examples, name
        for example in examples:
            assert re.fullmatch(DECIMAL_PATTERN, example), (name, example)
    # No Decimal of these bodies is a JSON number, or an unpatterned string.
    for model in (PriceResponse,):
        for name, info in model.model_fields.items():
            if info.annotation is Decimal:
                assert f"{model.__name__}.{name}" in fields


@pytest.mark.parametrize("text", ["150.05", "0", "-12.50", "5E-8", "1.5E+3", "-0E-8", "0.0001"])
def test_the_decimal_pattern_matches_what_decimals_serialise_to(text: str) -> None:
    assert re.fullmatch(DECIMAL_PATTERN, str(Decimal(text)))


@pytest.mark.parametrize("text", ["NaN", "Infinity", "1.", ".5", "1,5", "150.05 ", "abc", ""])
def test_the_decimal_pattern_refuses_what_is_not_one(text: str) -> None:
    assert not re.fullmatch(DECIMAL_PATTERN, text)


def test_the_price_answer_holds_exactly_the_cached_record_and_its_age() -> None:
    # PriceResponse redeclares the record's fields to document them: none missing or extra.
    assert set(PriceResponse.model_fields) == set(PriceData.model_fields) | {"age_seconds"}


# -- the health counters, typed ------------------------------------------------------------


async def test_health_stats_are_a_typed_model_with_the_streams_keys(
    service: Service, simulator: AlpacaSimulator
) -> None:
    schema = service.app.openapi()
    stats = schema["components"]["schemas"]["HealthResponse"]["properties"]["stats"]
    assert stats["$ref"].endswith("/HealthStats")
    # Counters that are not all zero, and both maps filled.
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})
    assert reply.status_code == 201
    await simulator.send_quotes([quote("AAPL", "10.00", "10.02"), quote("AAPL", "10.05", "10.01")])
    await eventually(
        lambda: service.stream.get_connection_stats()["quotes_rejected"], what="a rejected quote"
    )
    snapshot = service.stream.get_connection_stats()
    assert snapshot["quotes_rejected"] == {"crossed": 1}
    properties = schema["components"]["schemas"]["HealthStats"]["properties"]
    # The same keys in the same order as the spec's get_connection_stats().
    assert list(properties) == list(snapshot) == list(HealthStats.model_fields)
    # The JSON body is unchanged: the typed model serialises the dict exactly.
    as_json = json.loads(json.dumps(snapshot))
    typed = HealthStats.model_validate(snapshot).model_dump(mode="json")
    assert typed == as_json
    assert list(typed) == list(as_json)
    body = (await service.http.get("/health")).json()["stats"]
    assert list(body) == list(snapshot)
    assert body["quotes_rejected"] == {"crossed": 1}
    assert body["state"] == "connected"
