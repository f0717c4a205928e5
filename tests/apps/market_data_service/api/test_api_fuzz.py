"""The HTTP API fuzzed from its own OpenAPI document (schemathesis).

The real service runs in a background thread (uvicorn on a loopback port, its own event
loop) against the simulator and a private redis-server, so generated requests reach
every layer a real one does: validation, the broker (subscribe/unsubscribe), Redis
(prices), the broker's REST API (P&L). Schemathesis's engine runs the phases its CLI
runs (coverage: boundary and negative values, unexpected methods; fuzzing: generated
positive and negative cases) against every operation the document lists, twice: with
``MARKET_DATA_API_KEY`` set (the key supplied through the document's security scheme)
and without it.

Checks, all of schemathesis's defaults: no 5xx (the documented 502/503 aside), status
codes, content types, headers and bodies as documented, schema-violating input
refused, auth not ignored; "schema-valid input accepted" where the document states the
server's rules exactly (see :func:`fuzz_config`). A fixed seed keeps CI reproducible;
``FUZZ_SEED=<n>`` explores other inputs locally.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from schemathesis.engine import Status, events
from schemathesis.specs.openapi.schemas import OpenApiSchema

from apps.market_data_service.api.errors import PROBLEM_MEDIA_TYPE
from apps.simulator import SimulatorConfig
from libs.redis_client import EmbeddedRedis
from tests.fixtures.service import Service, ServiceInThread, service_in_thread

API_KEY = "fuzz-api-key-0123456789abcdef"
# Enough to get past validation into the broker and Redis on every operation, few enough
# for CI: about 500 requests, a few seconds per configuration.
MAX_EXAMPLES = 40
SEED = int(os.environ.get("FUZZ_SEED", "20240724"))


def wait_healthy(base_url: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while httpx.get(f"{base_url}/health", timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the service never became healthy"
        time.sleep(0.05)


@pytest.fixture(scope="module", params=["api-key", "open"])
def fuzzed_service(
    request: pytest.FixtureRequest, redis_server: EmbeddedRedis
) -> Iterator[ServiceInThread]:
    """The shared harness in its own thread (schemathesis drives requests synchronously),
    the broker's REST calls on the simulator; quotes generated at 20/s so reads find data."""
    overrides = {"market_data_api_key": API_KEY} if request.param == "api-key" else {}
    simulator = SimulatorConfig(port=0, rate=20.0, seed=4)
    with service_in_thread(redis_server.params, simulator, **overrides) as service:
        wait_healthy(service.base_url)
        yield service


def fuzz_config(base_url: str, seed: int, *, api_key: str | None) -> schemathesis.Config:
    config: dict[str, Any] = {
        "base-url": base_url,
        "seed": seed,
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "request-timeout": 10,
        # No "max-time": with one, the engine repeats the fuzzing phase until it is spent.
        "checks": {
            # "Schema-valid input must be accepted" needs a document stating every rule the
            # server applies. SYMBOL_PATTERN states the ticker rule exactly, so the check is
            # on for the operations that take one symbol per item; a comma-separated query
            # list (GET /prices) has rules a pattern cannot state.
            "positive_data_acceptance": {"enabled": False},
        },
        "operations": [
            {
                "include-path": ["/api/v1/subscribe", "/api/v1/subscribe/{symbol}"],
                "checks": {"positive_data_acceptance": {"enabled": True}},
            },
            {
                # The SSE stream never ends, and after its first event (the snapshots and
                # the subscription list, one frame) a quiet symbol sends nothing for 15 s:
                # read that first event, check it, hang up. Unbounded, every 200 held the
                # run for the whole request timeout (10 s), and a seed that generated a few
                # more of them ran out of time (docs/streaming.md, "Messages").
                "include-path": ["/api/v1/stream/sse"],
                "max-stream-events": 1,
            },
        ],
    }
    if api_key is not None:
        config["auth"] = {"openapi": {"ApiKey": {"api_key": api_key}}}
    return schemathesis.Config.from_dict(config)


@dataclass
class FuzzReport:
    """What one engine run did: requests by operation and status, and what failed."""

    statuses: dict[str, Counter[int | None]] = field(default_factory=dict)
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    stop_reason: str | None = None

    def summary(self) -> str:
        return "\n".join(
            f"  {label}: {dict(sorted(counts.items(), key=str))}"
            for label, counts in sorted(self.statuses.items())
        )

    def failure_text(self) -> str:
        return "\n\n".join(
            f"{label} [{check}] {title}\n{detail}"
            for (label, check, title), detail in self.failures.items()
        )


def run_engine(schema: OpenApiSchema) -> FuzzReport:
    """Run every applicable phase, as ``schemathesis run`` would, and collect the results."""
    report = FuzzReport()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            label = event.recorder.label
            counts = report.statuses.setdefault(label, Counter())
            for interaction in event.recorder.interactions.values():
                response = interaction.response
                counts[response.status_code if response is not None else None] += 1
            for checks in event.recorder.checks.values():
                for check in checks:
                    info = check.failure_info
                    if check.status is Status.FAILURE and info is not None:
                        key = (label, check.name, info.failure.title)
                        detail = f"{info.failure.message}\n{info.code_sample}"
                        report.failures.setdefault(key, detail)
        elif isinstance(event, events.NonFatalError | events.FatalError):
            report.errors.append(repr(event))
        elif isinstance(event, events.EngineFinished):
            report.stop_reason = event.stop_reason.value
    return report


@pytest.mark.timeout(90)
def test_api_conforms_to_its_openapi_document(fuzzed_service: ServiceInThread) -> None:
    base_url = fuzzed_service.base_url
    key = fuzzed_service.settings.market_data_api_key
    api_key = key.get_secret_value() if key is not None else None
    config = fuzz_config(base_url, SEED, api_key=api_key)
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=config, timeout=10)
    report = run_engine(schema)
    print(f"schemathesis seed {SEED}, API key {'on' if api_key else 'off'}:\n{report.summary()}")

    assert report.stop_reason == "completed", report.errors
    assert not report.errors
    assert not report.failures, report.failure_text()
    # Every documented operation ran, and past validation where it matters.
    paths: dict[str, dict[str, Any]] = schema.raw_schema["paths"]
    documented = {f"{method.upper()} {path}" for path, item in paths.items() for method in item}
    assert documented <= set(report.statuses)
    assert report.statuses["POST /api/v1/subscribe"][201] > 0
    assert report.statuses["GET /api/v1/prices/{symbol}"][200] > 0
    assert not any(counts[500] for counts in report.statuses.values())
    if api_key is not None:
        assert report.statuses["GET /api/v1/subscriptions"][401] > 0
        assert set(report.statuses["GET /health"]) <= {200, 405, 503}


# -- what the fuzzer never sends ------------------------------------------------------------


async def test_bodies_without_a_json_content_type_are_4xx_never_500(service: Service) -> None:
    # Schemathesis always sends the documented content type. Without one, FastAPI hands
    # the raw bytes to validation, and its own error handler then failed (500) on bytes
    # that are not UTF-8.
    bodies = [b"\xff{", b'{"symbols": ["\xff"]}', b"\xc3(", b"\x00", b"", b'{"symbols":["AAPL"]}']
    content_types = [None, "text/plain", "application/octet-stream", "application/json"]
    for body in bodies:
        for content_type in content_types:
            headers = {"content-type": content_type} if content_type else {}
            reply = await service.http.post("/api/v1/subscribe", content=body, headers=headers)
            assert 400 <= reply.status_code < 500 or reply.status_code == 201, (
                body,
                content_type,
                reply.status_code,
                reply.text,
            )
            expected = "application/json" if reply.status_code == 201 else PROBLEM_MEDIA_TYPE
            assert reply.headers["content-type"] == expected
