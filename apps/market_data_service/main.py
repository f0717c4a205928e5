"""The FastAPI app: a thin shell over :class:`~apps.market_data_service.service.MarketDataService`.

Run with ``uvicorn apps.market_data_service.main:app`` or ``market-data serve``.

``app`` is built when first looked up (uvicorn does that as it starts), from the
settings of the environment: a missing or wrong setting then ends the process with the
one-line message ``market-data serve`` prints, and status 1 (uvicorn's own status for an
app it cannot load), instead of a traceback of the startup and status 3.
``create_app()`` without settings reads them at startup instead, raising
:class:`~apps.market_data_service.config.SettingsError`.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import AsyncIterator
from typing import Final

from fastapi import Depends, FastAPI

from apps.market_data_service.api import docs
from apps.market_data_service.api.errors import (
    document_problems,
    install_problem_handlers,
    problems,
)
from apps.market_data_service.api.routes import health, metrics, pnl, prices, stream, subscriptions
from apps.market_data_service.api.routes.page import add_page
from apps.market_data_service.api.security import (
    UNAUTHORIZED_RESPONSES,
    document_api_key,
    require_api_key,
)
from apps.market_data_service.config import Settings, SettingsError, load_settings
from apps.market_data_service.observability.logs import (
    configure_logging_once,
    log_startup,
    settings_secrets,
)
from apps.market_data_service.service import MarketDataService
from libs.market_data import native

# ``app`` too, looked up by name (below); not in __all__, so a star import builds nothing.
__all__ = ["SETTINGS_HINT", "create_app", "settings_or_exit"]

# Printed under a settings mistake, as `market-data serve` does.
SETTINGS_HINT: Final = (
    "Set them in the environment or a .env file (see README, Configuration). "
    "To try the service without Alpaca keys, run `make demo`."
)

_DESCRIPTION: Final = """\
Real-time Alpaca quotes, validated with exact decimals, cached in Redis.

Every 4xx and 5xx answer is an RFC 9457 problem details body
(`application/problem+json`): `type`, `title`, `status`, a one-line `detail`, a
machine-readable `code`, and `errors` when several fields are wrong (schema `Problem`).
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; settings are read at startup when not given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service = MarketDataService(settings or load_settings())
        configure_logging_once(
            service.settings.log_level,
            service.settings.log_format,
            secrets=settings_secrets(service.settings),
        )
        native.use(service.settings.market_data_native)  # before the quote path is logged
        log_startup(service.settings)  # unknown variables, the configuration, quiet noise
        app.state.settings = service.settings
        app.state.service = service
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="Market Data Service",
        description=_DESCRIPTION,
        version="0.1.0",
        lifespan=lifespan,
        # Served from the app itself (api/docs.py): the pages work offline.
        docs_url=None,
        redoc_url=None,
        # MARKET_DATA_API_KEY, on every route (routers added later too) but the public ones.
        dependencies=[Depends(require_api_key)],
        responses={
            **UNAUTHORIZED_RESPONSES,
            **problems({500: "An unexpected error (`internal_error`), logged on the server"}),
        },
    )
    install_problem_handlers(app)
    document_problems(app)
    document_api_key(app)
    docs.add_offline_docs(app)
    add_page(app)  # the status page at / (apps/market_data_service/web/)

    app.include_router(health.router)
    app.include_router(subscriptions.router)
    app.include_router(pnl.router)
    app.include_router(prices.router)
    app.include_router(metrics.router)
    app.include_router(stream.router)
    return app


def settings_or_exit() -> Settings:
    """The environment's settings; on a mistake, the message on stderr and exit 1."""
    try:
        return load_settings()
    except SettingsError as exc:
        print(f"market-data: {exc}", file=sys.stderr)
        print(SETTINGS_HINT, file=sys.stderr)
        raise SystemExit(1) from None


@functools.cache
def _app_from_environment() -> FastAPI:
    return create_app(settings_or_exit())


def __getattr__(name: str) -> FastAPI:
    # ``app``, built on first lookup (PEP 562): importing this module (tests,
    # ``market-data serve``) reads no settings.
    if name == "app":
        return _app_from_environment()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
