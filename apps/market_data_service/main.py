"""The FastAPI service: a thin shell over ``AlpacaMarketDataStream``.

Run with ``uvicorn apps.market_data_service.main:app`` or ``market-data serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Path, Request, Response, status
from fastapi.responses import JSONResponse

from apps.market_data_service.config import Settings, load_settings
from apps.market_data_service.schemas import (
    HealthResponse,
    SubscribeRequest,
    SubscribeResponse,
    SubscriptionsResponse,
    UnsubscribeResponse,
)
from libs.market_data import (
    AlpacaMarketDataStream,
    ConnectionState,
    InvalidSymbolError,
    MarketDataError,
    SubscriptionError,
    normalize_symbol,
)
from libs.redis_client import EventPublisher, RedisClient

__all__ = ["app", "create_app"]

logger = logging.getLogger(__name__)


def _build_stream(settings: Settings) -> tuple[AlpacaMarketDataStream, RedisClient, EventPublisher]:
    params = settings.redis_params()
    redis_client = RedisClient(params=params)
    publisher = EventPublisher(client=redis_client)
    stream = AlpacaMarketDataStream(
        api_key=settings.alpaca_api_key.get_secret_value(),
        secret_key=settings.alpaca_secret_key.get_secret_value(),
        redis_client=redis_client,
        event_publisher=publisher,
        price_ttl=settings.price_cache_ttl,
        url=settings.stream_url,
        max_reconnect_attempts=settings.max_reconnect_attempts,
        reconnect_base_delay=settings.reconnect_base_delay,
        reconnect_max_delay=settings.reconnect_max_delay,
    )
    return stream, redis_client, publisher


async def _run_stream(stream: AlpacaMarketDataStream) -> None:
    try:
        await stream.start()
    except MarketDataError as exc:
        # The state (FAILED) and reason stay visible in /health; the service keeps serving.
        logger.error("market data stream stopped: %s", exc)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; settings are read at startup when not given."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        current = settings or load_settings()
        stream, redis_client, publisher = _build_stream(current)
        app.state.settings = current
        app.state.stream = stream
        task = asyncio.create_task(_run_stream(stream), name="market-data-stream")
        try:
            yield
        finally:
            await stream.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await publisher.close()
            await redis_client.close()

    app = FastAPI(
        title="Market Data Service",
        description="Real-time Alpaca quotes, validated with exact decimals, cached in Redis.",
        version="0.1.0",
        lifespan=lifespan,
    )

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

    def stream_of(request: Request) -> AlpacaMarketDataStream:
        stream: AlpacaMarketDataStream = request.app.state.stream
        return stream

    @app.get("/health", response_model=HealthResponse)
    async def health(request: Request, response: Response) -> HealthResponse:
        stream = stream_of(request)
        stats: dict[str, Any] = stream.get_connection_stats()
        state = stream.state
        redis_ok = bool(stats["redis_connected"])
        reason: str | None = None
        if state is ConnectionState.FAILED:
            health_status = "unhealthy"
            reason = stats["last_error"]
            response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        elif state is not ConnectionState.CONNECTED or not redis_ok:
            health_status = "degraded"
            if not redis_ok:
                reason = f"Redis unavailable: {stats['redis_last_error']}"
            else:
                reason = f"stream {state.value}: {stats['last_error'] or 'starting'}"
        else:
            health_status = "healthy"
        return HealthResponse(
            status=health_status,
            service=request.app.state.settings.service_name,
            websocket_connected=stream.is_connected(),
            subscribed_symbols=stats["subscribed_symbols"],
            reconnect_attempts=stats["reconnect_attempts"],
            max_reconnect_attempts=stats["max_reconnect_attempts"],
            state=state.value,
            reason=reason,
            redis_connected=redis_ok,
            stats=stats,
        )

    @app.post(
        "/api/v1/subscribe",
        status_code=status.HTTP_201_CREATED,
        response_model=SubscribeResponse,
        responses={
            409: {"description": "The broker refused the subscription"},
            502: {"description": "The broker answered with another error"},
        },
    )
    async def subscribe(
        body: SubscribeRequest, request: Request
    ) -> SubscribeResponse | JSONResponse:
        stream = stream_of(request)
        try:
            await stream.subscribe_symbols(body.symbols)
        except SubscriptionError as exc:
            return JSONResponse(
                status_code=status.HTTP_409_CONFLICT,
                content={
                    "detail": f"the broker refused the subscription: {exc.msg} ({exc.code})",
                    "refused_symbols": exc.symbols,
                    "total_subscriptions": len(stream.get_subscribed_symbols()),
                },
            )
        return SubscribeResponse(
            message=f"Successfully subscribed to {len(body.symbols)} symbols",
            subscribed_symbols=body.symbols,
            total_subscriptions=len(stream.get_subscribed_symbols()),
        )

    @app.delete(
        # ":path" so a ticker with a slash (BTC/USD, allowed by normalize_symbol) can be
        # unsubscribed as well as subscribed; a plain parameter stops at the "/".
        "/api/v1/subscribe/{symbol:path}",
        response_model=UnsubscribeResponse,
        responses={404: {"description": "Not subscribed"}, 422: {"description": "Not a ticker"}},
    )
    async def unsubscribe(
        symbol: Annotated[str, Path(max_length=64)], request: Request
    ) -> UnsubscribeResponse:
        stream = stream_of(request)
        try:
            normalized = normalize_symbol(symbol)
        except InvalidSymbolError as exc:
            # 422 as a number: Starlette renamed (and deprecated) the constant.
            raise HTTPException(422, str(exc)) from None
        removed = await stream.unsubscribe_symbols([normalized])
        if not removed:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"not subscribed to {normalized}")
        return UnsubscribeResponse(
            message=f"Successfully unsubscribed from {normalized}",
            remaining_subscriptions=len(stream.get_subscribed_symbols()),
        )

    @app.get("/api/v1/subscriptions", response_model=SubscriptionsResponse)
    async def subscriptions(request: Request) -> SubscriptionsResponse:
        symbols = stream_of(request).get_subscribed_symbols()
        return SubscriptionsResponse(symbols=symbols, count=len(symbols))

    return app


app = create_app()
