"""The optional API key of the HTTP API (``MARKET_DATA_API_KEY``).

When the setting is present, every endpoint except those in :data:`PUBLIC_PATHS`
(``/health`` and its probes ``/health/live`` and ``/health/ready``, for orchestrators)
answers 401 unless the request carries the key, as ``X-API-Key: <key>`` or
``Authorization: Bearer <key>``. When it is absent the API is open (the service binds to
loopback by default).

:func:`require_api_key` is applied to the whole app (``FastAPI(dependencies=...)``), so a
router added later is protected without doing anything. The documentation (``/docs``,
``/redoc``, ``/openapi.json`` and the pages' own scripts and styles under
``/static-offline-docs``) is not an API route and stays reachable: it describes the key
(the security schemes) but contains no secret, and a page that loads needs no header a
browser would not send. The key is compared in constant time, on SHA-256 digests so
even its length does not leak, and is never logged or echoed.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from typing import Annotated, Any, Final

from fastapi import FastAPI, Security, status
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr
from starlette.requests import HTTPConnection

from apps.market_data_service.api.errors import ErrorCode, ProblemError, problems

__all__ = [
    "API_KEY_HEADER",
    "PUBLIC_PATHS",
    "SELF_CHECKED_PATHS",
    "UNAUTHORIZED_RESPONSES",
    "api_key_configured",
    "check_api_key",
    "document_api_key",
    "require_api_key",
]

API_KEY_HEADER: Final = "X-API-Key"
# Route paths (as declared) that never need the key.
PUBLIC_PATHS: Final = frozenset({"/health", "/health/live", "/health/ready"})
# Routes that check the key themselves (``check_api_key``), for they also take a one-time
# ticket in the URL: browsers cannot set headers on WebSocket/EventSource (docs/streaming.md).
SELF_CHECKED_PATHS: Final = frozenset({"/api/v1/stream", "/api/v1/stream/sse"})

_MISSING: Final = "missing API key: send it as X-API-Key or as 'Authorization: Bearer <key>'"
_WRONG: Final = "invalid API key"
# RFC 9110: a 401 names the scheme the client should use.
_CHALLENGE: Final = {"WWW-Authenticate": 'Bearer realm="market-data"'}

_api_key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="ApiKey",
    description="MARKET_DATA_API_KEY, when the service is configured with one.",
    auto_error=False,
)
_bearer = HTTPBearer(
    scheme_name="Bearer",
    description="The same key as 'Authorization: Bearer <key>'.",
    auto_error=False,
)


UNAUTHORIZED_RESPONSES: Final[dict[int | str, dict[str, Any]]] = problems(
    {401: "The API key is missing or wrong (`unauthorized`)"}
)


def _digest(value: str) -> bytes:
    # Header values arrive latin-1 decoded; any str encodes to UTF-8 (a key is ASCII).
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def _configured_key(request: HTTPConnection) -> SecretStr | None:
    settings = getattr(request.app.state, "settings", None)
    key: SecretStr | None = getattr(settings, "market_data_api_key", None)
    return key


async def require_api_key(
    request: HTTPConnection,  # not Request: it runs on WebSocket routes too
    api_key: Annotated[str | None, Security(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> None:
    """Let the request through if no key is configured, the route is public, or the key
    it carries matches; otherwise 401. ``X-API-Key`` wins when both are sent."""
    expected = _configured_key(request)
    if expected is None:
        return
    route = request.scope.get("route")
    if getattr(route, "path", None) in PUBLIC_PATHS | SELF_CHECKED_PATHS:
        return
    presented = api_key if api_key is not None else (bearer.credentials if bearer else None)
    _check(presented, expected)


def check_api_key(connection: HTTPConnection) -> None:
    """:func:`require_api_key` for a route of :data:`SELF_CHECKED_PATHS` (an HTTP request
    or a WebSocket): raise the 401 unless no key is configured or the headers carry it."""
    expected = _configured_key(connection)
    if expected is None:
        return
    presented = connection.headers.get(API_KEY_HEADER)
    if presented is None:
        scheme, _, credentials = connection.headers.get("authorization", "").partition(" ")
        presented = credentials.strip() if scheme.lower() == "bearer" else None
    _check(presented, expected)


def api_key_configured(connection: HTTPConnection) -> bool:
    return _configured_key(connection) is not None


def _check(presented: str | None, expected: SecretStr) -> None:
    if not presented:
        raise _unauthorized(_MISSING)
    if not hmac.compare_digest(_digest(presented), _digest(expected.get_secret_value())):
        raise _unauthorized(_WRONG)


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(
        status.HTTP_401_UNAUTHORIZED, detail, ErrorCode.UNAUTHORIZED, headers=_CHALLENGE
    )


def document_api_key(app: FastAPI) -> None:
    """Make the OpenAPI document say what the running service really requires.

    FastAPI lists the key's security schemes and the 401 on every route of the app;
    this removes them from :data:`PUBLIC_PATHS`, and from every route when no key is
    configured. The document is built on its first request, after startup has put the
    settings on ``app.state``.
    """
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        schema = build()
        settings = getattr(app.state, "settings", None)
        protected = getattr(settings, "market_data_api_key", None) is not None
        for path, item in schema.get("paths", {}).items():
            if protected and path not in PUBLIC_PATHS:
                continue
            for operation in item.values():
                if isinstance(operation, dict):
                    operation.pop("security", None)
                    operation.get("responses", {}).pop("401", None)
        if not protected:
            schema.get("components", {}).pop("securitySchemes", None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
