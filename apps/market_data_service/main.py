"""The FastAPI app: a thin shell over :class:`~apps.market_data_service.service.MarketDataService`.

Run with ``uvicorn apps.market_data_service.main:app`` or ``market-data serve``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from apps.market_data_service.api.routes import health, metrics, pnl, prices, subscriptions
from apps.market_data_service.api.security import (
    UNAUTHORIZED_RESPONSES,
    document_api_key,
    require_api_key,
)
from apps.market_data_service.config import Settings, load_settings
from apps.market_data_service.observability.logs import configure_logging_once, settings_secrets
from apps.market_data_service.service import MarketDataService
from libs.market_data import InvalidSymbolError, MarketDataError

__all__ = ["app", "create_app"]

logger = logging.getLogger(__name__)


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
        app.state.settings = service.settings
        app.state.service = service
        await service.start()
        try:
            yield
        finally:
            await service.stop()

    app = FastAPI(
        title="Market Data Service",
        description="Real-time Alpaca quotes, validated with exact decimals, cached in Redis.",
        version="0.1.0",
        lifespan=lifespan,
        # MARKET_DATA_API_KEY, on every route (routers added later too) but /health.
        dependencies=[Depends(require_api_key)],
        responses=UNAUTHORIZED_RESPONSES,
    )
    document_api_key(app)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's own handler answers 500 when the rejected input is bytes that are not
        # UTF-8 (a body sent without a JSON content type): show such bytes escaped.
        detail = jsonable_encoder(
            exc.errors(),
            custom_encoder={bytes: lambda raw: raw.decode("utf-8", "backslashreplace")},
        )
        return JSONResponse(status_code=422, content={"detail": detail})

    @app.exception_handler(MarketDataError)
    async def broker_error(request: Request, exc: MarketDataError) -> JSONResponse:
        # The broker answered a request with an error the endpoint does not map itself
        # (406, 407, 500, a broken reply ...): a gateway error naming it, never a bare 500.
        if isinstance(exc, InvalidSymbolError):  # bad input, wherever it is caught
            return JSONResponse(status_code=422, content={"detail": str(exc)})
        logger.warning("%s %s failed: %s", request.method, request.url.path, exc)
        return JSONResponse(
            status_code=status.HTTP_502_BAD_GATEWAY,
            content={"detail": f"the market data broker answered with an error: {exc}"},
        )

    app.include_router(health.router)
    app.include_router(subscriptions.router)
    app.include_router(pnl.router)
    app.include_router(prices.router)
    app.include_router(metrics.router)
    return app


app = create_app()
