"""Security of the running service: the optional API key, secrets kept out of logs and
answers, loopback by default.

The service runs on the shared harness (uvicorn in the test's loop, the simulator, a real
redis-server). The key test walks every route the app has, so a router added later is
covered without touching this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import logging
import os
import shutil
import socket
import sys
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from apps.market_data_service.api import security
from apps.market_data_service.cli import commands as cli
from apps.market_data_service.config import Settings, SettingsError, load_settings
from apps.market_data_service.main import create_app
from apps.simulator import AlpacaSimulator
from libs.redis_client import EmbeddedRedis
from tests.apps.market_data_service.test_main import wait_cached
from tests.fixtures.service import (
    Service,
    ServiceFactory,
    free_port,
    local_broker,
    service_settings,
)
from tests.fixtures.simulator import SimulatorFactory
from tests.helpers import UVICORN_LOGGERS, CapturedLogs, capture_logs, eventually, quote

API_KEY = "mds-api-key-7f3a9c1e5b2d4860"
WRONG_KEY = "mds-api-key-0000000000000000"


@pytest.fixture
async def keyed(start_service: ServiceFactory, simulator: AlpacaSimulator) -> Service:
    """The service with ``MARKET_DATA_API_KEY`` set, connected."""
    started = await start_service(market_data_api_key=API_KEY, **local_broker(simulator))
    await started.wait_connected()
    return started


@pytest.fixture
async def open_service(start_service: ServiceFactory, simulator: AlpacaSimulator) -> Service:
    """The service without an API key, connected."""
    started = await start_service(**local_broker(simulator))
    await started.wait_connected()
    return started


def operations(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """(method, concrete path) of every operation, path parameters filled with ``AAPL``."""
    found = []
    for path, item in openapi["paths"].items():
        concrete = path.replace("{symbol}", "AAPL")
        found.extend((method.upper(), concrete) for method in item)
    return found


def unauthorized(detail: str) -> dict[str, Any]:
    """The problem details body of a 401."""
    return {
        "type": "about:blank",
        "title": "Unauthorized",
        "status": 401,
        "detail": detail,
        "code": "unauthorized",
    }


async def call(http: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    body = {"symbols": ["AAPL"]} if method == "POST" else None
    return await http.request(method, path, json=body, **kwargs)


# -- the API key ---------------------------------------------------------------------------------


async def test_every_route_but_health_needs_the_key(keyed: Service) -> None:
    openapi = (await keyed.http.get("/openapi.json")).json()
    routes = operations(openapi)
    assert ("GET", "/metrics") in routes  # the scrape endpoint is protected like the rest
    assert len(routes) >= 5
    for method, path in routes:
        public = path in security.PUBLIC_PATHS
        reply = await call(keyed.http, method, path)
        if public:
            assert reply.status_code in (200, 503), (method, path, reply.text)
            continue
        assert reply.status_code == 401, (method, path, reply.text)
        assert reply.headers["content-type"] == "application/problem+json"
        assert reply.json() == unauthorized(
            "missing API key: send it as X-API-Key or as 'Authorization: Bearer <key>'"
        )
        assert reply.headers["www-authenticate"].startswith("Bearer")
        for headers in ({"X-API-Key": WRONG_KEY}, {"Authorization": f"Bearer {WRONG_KEY}"}):
            reply = await call(keyed.http, method, path, headers=headers)
            assert reply.status_code == 401, (method, path, headers)
            assert reply.json() == unauthorized("invalid API key")
            assert WRONG_KEY not in reply.text
            assert API_KEY not in reply.text
        for headers in ({"X-API-Key": API_KEY}, {"Authorization": f"Bearer {API_KEY}"}):
            reply = await call(keyed.http, method, path, headers=headers)
            assert reply.status_code != 401, (method, path, headers, reply.text)
            assert reply.status_code < 500, (method, path, headers, reply.text)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": ""},
        {"X-API-Key": API_KEY[:-1]},
        {"X-API-Key": API_KEY + "x"},
        {"X-API-Key": API_KEY.upper()},
        {"X-API-Key": f"{API_KEY},{API_KEY}"},
        {"Authorization": API_KEY},
        {"Authorization": f"Basic {API_KEY}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {API_KEY}", "X-API-Key": WRONG_KEY},  # X-API-Key wins
    ],
    ids=[
        "empty",
        "prefix",
        "longer",
        "case",
        "twice",
        "no-scheme",
        "basic",
        "bare-bearer",
        "wrong-header-wins",
    ],
)
async def test_near_misses_are_refused(keyed: Service, headers: dict[str, str]) -> None:
    reply = await keyed.http.get("/api/v1/subscriptions", headers=headers)
    assert reply.status_code == 401
    assert API_KEY not in reply.text


async def test_health_docs_and_openapi_stay_open_and_describe_the_key(keyed: Service) -> None:
    assert (await keyed.http.get("/health")).status_code == 200
    assert (await keyed.http.get("/docs")).status_code == 200
    reply = await keyed.http.get("/openapi.json")
    assert reply.status_code == 200
    assert API_KEY not in reply.text
    openapi = reply.json()
    schemes = openapi["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["ApiKey"]["description"],
    }
    assert schemes["Bearer"]["scheme"] == "bearer"
    health = openapi["paths"]["/health"]["get"]
    assert "security" not in health
    assert "401" not in health["responses"]
    subscribe = openapi["paths"]["/api/v1/subscribe"]["post"]
    assert {"ApiKey": []} in subscribe["security"]
    assert "401" in subscribe["responses"]


async def test_without_a_key_everything_is_open_and_the_document_says_so(
    open_service: Service,
) -> None:
    service = open_service
    openapi = (await service.http.get("/openapi.json")).json()
    assert "securitySchemes" not in openapi.get("components", {})
    for method, path in operations(openapi):
        assert "security" not in openapi["paths"][path.replace("AAPL", "{symbol}")][method.lower()]
        reply = await call(service.http, method, path)
        assert reply.status_code != 401, (method, path)


async def test_a_router_added_later_is_protected_by_default(
    simulator: AlpacaSimulator, redis_server: EmbeddedRedis
) -> None:
    # In-process ASGI (no socket), to add a router before the app starts.
    app = create_app(service_settings(simulator, redis_server.params, market_data_api_key=API_KEY))
    extra = APIRouter()

    @extra.get("/api/v1/new-thing")
    async def new_thing() -> dict[str, str]:
        return {"ok": "yes"}

    app.include_router(extra)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as http,
    ):
        assert (await http.get("/api/v1/new-thing")).status_code == 401
        reply = await http.get("/api/v1/new-thing", headers={"X-API-Key": API_KEY})
        assert reply.json() == {"ok": "yes"}
        # Connected before shutting down: a stop in mid-handshake takes seconds longer.
        for _ in range(250):
            if (await http.get("/health")).json()["state"] == "connected":
                break
            await asyncio.sleep(0.02)


async def test_the_cli_sends_the_key_from_the_environment(
    keyed: Service, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    api = str(keyed.http.base_url)
    monkeypatch.delenv("MARKET_DATA_API_KEY", raising=False)
    monkeypatch.delenv("MARKET_DATA_API_KEY_FILE", raising=False)
    # The CLI is synchronous: run it off the loop that serves the API.
    assert await asyncio.to_thread(cli.main, ["subscriptions", "--api", api]) == 1
    printed = capsys.readouterr()
    assert "missing API key" in printed.out + printed.err
    monkeypatch.setenv("MARKET_DATA_API_KEY", API_KEY)
    assert await asyncio.to_thread(cli.main, ["subscribe", "AAPL", "--api", api]) == 0
    assert await asyncio.to_thread(cli.main, ["subscriptions", "--api", api]) == 0
    out = capsys.readouterr().out
    assert "AAPL" in out
    assert API_KEY not in out


async def test_keys_are_compared_in_constant_time_on_equal_length_digests(
    keyed: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Real requests through the app, with a spy on the comparison require_api_key makes
    # (the real one still decides): a key compared with == instead fails here.
    calls: list[tuple[bytes, bytes]] = []
    real = security.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((bytes(a), bytes(b)))
        return real(a, b)

    monkeypatch.setattr(security.hmac, "compare_digest", spy)

    def digest(key: str) -> bytes:
        return hashlib.sha256(key.encode()).digest()

    cases: list[tuple[dict[str, str], str | None, int]] = [
        ({"X-API-Key": API_KEY}, API_KEY, 200),
        ({"X-API-Key": WRONG_KEY}, WRONG_KEY, 401),  # the same length
        ({"X-API-Key": "short"}, "short", 401),  # another length, the same digest length
        ({"Authorization": f"Bearer {API_KEY}"}, API_KEY, 200),
        ({"Authorization": f"Bearer {WRONG_KEY}"}, WRONG_KEY, 401),
        ({}, None, 401),  # no key: nothing to compare
    ]
    for headers, presented, status in cases:
        calls.clear()
        reply = await keyed.http.get("/api/v1/subscriptions", headers=headers)
        assert reply.status_code == status, (headers, reply.text)
        expected = [] if presented is None else [(digest(presented), digest(API_KEY))]
        assert calls == expected, headers
        assert all(len(a) == len(b) == 32 for a, b in calls)


# -- secrets never logged or returned ------------------------------------------------------------

ALPACA_KEY = "AKSECRETKEYID9F3B7C1D"
ALPACA_SECRET = "alpaca-secret-Zq8vW2xN4mR6tY0u"
REDIS_PASSWORD = "redis-secret-Hk5pL9jD3sF7gA1e"


@pytest.fixture
def capture_all_logs() -> Iterator[CapturedLogs]:
    """Every record of every logger at DEBUG (ours, websockets, redis, httpx), and
    uvicorn's heard on its own loggers: they need not propagate to the root."""
    with capture_logs(logging.DEBUG, (*UVICORN_LOGGERS, "websockets", "redis", "httpx")) as logs:
        yield logs


def secret_forms(*secrets: str) -> list[str]:
    """Each secret as written and as a URL would carry it."""
    forms = set(secrets)
    forms.update(urllib.parse.quote(s, safe="") for s in secrets)
    return sorted(forms)


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if secret in text]


def record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage()]
    if record.exc_info:
        parts.append(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        parts.append(record.stack_info)
    parts.extend(repr(value) for key, value in vars(record).items() if key not in _PLAIN)
    return "\n".join(parts)


_PLAIN = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


@pytest.mark.timeout(45)
async def test_secrets_never_reach_logs_or_answers(
    capture_all_logs: CapturedLogs,
    start_service: ServiceFactory,
    simulator_factory: SimulatorFactory,
) -> None:
    redis = EmbeddedRedis(password=REDIS_PASSWORD)
    await asyncio.to_thread(redis.start)
    try:
        sim = await simulator_factory(api_key=ALPACA_KEY, secret_key=ALPACA_SECRET)
        started = await start_service(
            alpaca_api_key=ALPACA_KEY,
            alpaca_secret_key=ALPACA_SECRET,
            alpaca_data_url=sim.url(),
            **local_broker(sim),
            redis_url=redis.url,  # the password travels inside the URL
            market_data_api_key=API_KEY,
            log_level="DEBUG",
            # httpx and the probes are quiet by default: turned on, their lines are
            # checked for secrets too.
            log_http_client=True,
            log_probes=True,
        )
        answers = await exercise(started, sim, redis)
    finally:
        await asyncio.to_thread(redis.stop)

    secrets = secret_forms(ALPACA_KEY, ALPACA_SECRET, REDIS_PASSWORD, API_KEY)
    for answer in answers:
        assert not leaks(answer, secrets), answer
    # The simulator plays Alpaca: its own records may hold what it was sent.
    ours = [
        r
        for r in capture_all_logs.records
        if not r.name.startswith(("apps.simulator", "websockets.server"))
    ]
    assert len(ours) > 20, "expected the DEBUG run to log plenty"
    # uvicorn was heard: its access lines of the requests above, at least.
    assert capture_all_logs.named("uvicorn.access"), "uvicorn's loggers were not captured"
    for record in ours:
        text = record_text(record)
        assert not leaks(text, secrets), f"{record.name}: {text}"
    # websockets logged the auth frame of the first session and of the reconnect: redacted.
    redacted = [r for r in ours if r.getMessage() == "> (the auth message: redacted)"]
    assert len(redacted) >= 2
    # And a settings mistake names the setting, not the value.
    with pytest.raises(SettingsError) as caught:
        load_settings(
            alpaca_api_key=ALPACA_KEY,
            alpaca_secret_key=ALPACA_SECRET,
            redis_url=f"redis://:{REDIS_PASSWORD}@host:notaport/0",
            market_data_api_key=API_KEY[:8],
            _env_file=None,
        )
    assert "REDIS_URL" in str(caught.value)
    assert "MARKET_DATA_API_KEY" in str(caught.value)
    assert not leaks(str(caught.value), secrets)


async def exercise(service: Service, sim: AlpacaSimulator, redis: EmbeddedRedis) -> list[str]:
    """Success, refusals, bad input, broker errors, a reconnect and a Redis outage; every
    answer's headers and body, as text."""
    http = service.http
    auth = {"X-API-Key": API_KEY}
    answers: list[str] = []

    async def ask(method: str, path: str, **kwargs: Any) -> httpx.Response:
        reply = await http.request(method, path, **kwargs)
        answers.append(f"{reply.status_code} {dict(reply.headers)}\n{reply.text}")
        return reply

    await service.wait_connected()
    assert (await ask("POST", "/api/v1/subscribe", json={"symbols": ["AAPL"]})).status_code == 401
    await ask("GET", "/api/v1/subscriptions", headers={"X-API-Key": WRONG_KEY})
    await ask("GET", "/api/v1/subscriptions", headers={"Authorization": f"Bearer {WRONG_KEY}"})
    reply = await ask("POST", "/api/v1/subscribe", json={"symbols": ["AAPL", "MSFT"]}, headers=auth)
    assert reply.status_code == 201, reply.text
    await sim.send_quotes([quote("AAPL", "150.00", "150.02")])
    await wait_cached(redis.params, "AAPL", lambda p: p["mid"] == "150.01")
    await ask("POST", "/api/v1/subscribe", json={"symbols": ["not a ticker"]}, headers=auth)
    await ask("POST", "/api/v1/subscribe", content=b"\xff{", headers=auth)
    await ask("DELETE", "/api/v1/subscribe/TSLA", headers=auth)
    sim.reject_next_subscribe(405)
    refused = await ask("POST", "/api/v1/subscribe", json={"symbols": ["NVDA"]}, headers=auth)
    assert refused.status_code == 409
    sim.reject_next_subscribe(500)
    await ask("POST", "/api/v1/subscribe", json={"symbols": ["AMD"]}, headers=auth)
    for path in (
        "/health",
        "/openapi.json",
        "/docs",
        "/metrics",
        "/api/v1/subscriptions",
        "/api/v1/prices/AAPL",
        "/api/v1/prices?symbols=AAPL,MSFT",
    ):
        await ask("GET", path, headers=auth)
    # A dropped connection: the stream reconnects (and authenticates again).
    auths = sim.auth_attempts
    await sim.drop_connections(clean=False)
    # Waiting on the broker's count, not on a short-lived health state a poll can miss.
    await eventually(lambda: sim.auth_attempts > auths, what="the stream to authenticate again")
    await service.wait_connected()
    # A Redis outage and its recovery.
    await asyncio.to_thread(redis.kill)
    await sim.send_quotes([quote("AAPL", "151.00", "151.02")])
    await service.wait_health(lambda b: not b["redis_connected"], "Redis to be missed")
    await ask("GET", "/health")
    await ask("GET", "/api/v1/prices/AAPL", headers=auth)
    await asyncio.to_thread(redis.restart)
    await service.wait_connected()
    await wait_cached(redis.params, "AAPL", lambda p: p["mid"] == "151.01")
    await ask("GET", "/health")
    return answers


# -- loopback by default --------------------------------------------------------------------------


def test_the_service_binds_to_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERVICE_HOST", raising=False)
    settings = Settings(alpaca_api_key="k", alpaca_secret_key="s", _env_file=None)  # type: ignore[call-arg]
    assert settings.service_host == "127.0.0.1"


async def test_market_data_serve_listens_on_loopback_only(
    simulator: AlpacaSimulator, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    """``market-data serve`` with no host setting: reachable on 127.0.0.1, not elsewhere."""
    port = free_port()
    env = {
        "ALPACA_API_KEY": "sim-key",
        "ALPACA_SECRET_KEY": "sim-secret",
        "ALPACA_DATA_URL": simulator.url(),
        "ALPACA_BASE_URL": simulator.http_url(),
        "ALPACA_DATA_BASE_URL": simulator.http_url(),
        "REDIS_HOST": redis_server.host,
        "REDIS_PORT": str(redis_server.port),
        "PORT": str(port),
        "LOG_LEVEL": "WARNING",
    }
    process = await asyncio.create_subprocess_exec(
        _market_data(),
        "serve",
        env={**_base_env(), **env},
        cwd=tmp_path,  # no stray .env
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            deadline = asyncio.get_running_loop().time() + 15
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.returncode is None, "the service exited"
                assert asyncio.get_running_loop().time() < deadline, "never answered"
                await asyncio.sleep(0.05)
            for address in _non_loopback_addresses():
                with pytest.raises(httpx.ConnectError):
                    await http.get(f"http://{address}:{port}/health")
        listening = _listening_addresses(port)
        assert listening == {"127.0.0.1"}, listening
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 15)


def _market_data() -> str:
    beside = Path(sys.executable).with_name("market-data")
    found = str(beside) if beside.exists() else shutil.which("market-data")
    assert found, "the market-data command is not installed"
    return found


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "REDIS_SERVER_BIN")
    return {name: os.environ[name] for name in keep if name in os.environ}


def _non_loopback_addresses() -> list[str]:
    """This machine's IPv4 addresses outside 127.0.0.0/8 (none in a bare container)."""
    found: set[str] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
        probe.connect(("192.0.2.1", 9))  # TEST-NET-1: a UDP connect sends nothing
        found.add(probe.getsockname()[0])
    with contextlib.suppress(OSError):
        found.update(socket.gethostbyname_ex(socket.gethostname())[2])
    return sorted(a for a in found if not a.startswith("127.") and a != "0.0.0.0")


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP socket listening on ``port``, from /proc/net/tcp{,6}."""
    found: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state = fields[1], fields[3]
            address, _, port_hex = local.partition(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.add(_decode_address(address) if len(address) == width else address)
    return found


def _decode_address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return str(ipaddress.IPv6Address(words))
