"""Latest-price reads from the cache: one symbol, or many in one Redis round trip.

Both go through :class:`~libs.market_data.cache.price_cache.PriceCache`, the reader every
service of the platform uses, so these reads count as cache hits and misses.
"""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, status

from apps.market_data_service.api.dependencies import ServiceDep
from apps.market_data_service.api.errors import (
    ErrorCode,
    ProblemError,
    problems,
    symbol_message,
)
from apps.market_data_service.api.schemas import (
    MAX_SYMBOLS_PER_REQUEST,
    PriceResponse,
    PricesResponse,
    SymbolPath,
)
from apps.market_data_service.service import MarketDataService
from libs.market_data import InvalidSymbolError, PriceData, normalize_symbol, normalize_symbols
from libs.market_data.cache.price_cache import price_age_seconds
from libs.redis_client import RedisClientError

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

_UNAVAILABLE = "Redis cannot be reached (`redis_unavailable`)"


@router.get(
    # ":path" for tickers with a slash (BTC/USD), as in DELETE /subscribe/{symbol}.
    "/prices/{symbol:path}",
    response_model=PriceResponse,
    summary="Latest cached price of a symbol",
    responses=problems(
        {
            404: "No fresh price cached (`not_found`); `detail` says whether the symbol is "
            "subscribed",
            422: "Not a ticker (`invalid_symbol`)",
            503: _UNAVAILABLE,
        }
    ),
)
async def latest_price(
    symbol: SymbolPath,
    service: ServiceDep,
) -> PriceResponse:
    """The price cached under `price:{SYMBOL}` (bid, ask, exact mid, sizes, the
    exchange timestamp) and its age in seconds from that timestamp. 404 when no price
    is cached within `PRICE_CACHE_TTL`."""
    try:
        normalized = normalize_symbol(symbol)
    except InvalidSymbolError as exc:
        raise ProblemError(
            422, f"path.symbol: {symbol_message(exc)}", ErrorCode.INVALID_SYMBOL
        ) from None
    try:
        price = await service.prices.get(normalized)
    except RedisClientError as exc:
        raise _redis_unavailable(exc) from None
    if price is None:
        raise ProblemError(
            status.HTTP_404_NOT_FOUND, _no_price(service, normalized), ErrorCode.NOT_FOUND
        )
    return _with_age(price, time.time())


@router.get(
    "/prices",
    response_model=PricesResponse,
    summary="Latest cached prices of many symbols",
    responses=problems(
        {
            422: "Missing, bad or too many symbols (`invalid_request`, `invalid_symbol`)",
            503: _UNAVAILABLE,
        }
    ),
)
async def latest_prices(
    service: ServiceDep,
    symbols: Annotated[
        list[str],
        Query(
            description=(
                "Comma-separated tickers (`AAPL,MSFT`); the parameter may also repeat. "
                f"At most {MAX_SYMBOLS_PER_REQUEST} distinct symbols."
            ),
            examples=[["AAPL,MSFT"]],
        ),
    ],
) -> PricesResponse:
    """The cached prices of the symbols asked for, read in one Redis round trip, in
    the order asked; those with no fresh price are listed under `missing`."""
    pieces = [piece for value in symbols for piece in value.split(",") if piece.strip()]
    if not pieces:
        raise _bad_query("give at least one ticker, e.g. ?symbols=AAPL,MSFT")
    # Checked before and after normalising: a huge list is refused without walking it.
    too_many = f"at most {MAX_SYMBOLS_PER_REQUEST} symbols per request"
    if len(pieces) > 10 * MAX_SYMBOLS_PER_REQUEST:
        raise _bad_query(too_many)
    try:
        wanted = normalize_symbols(pieces)
    except InvalidSymbolError as exc:
        raise _bad_query(symbol_message(exc), ErrorCode.INVALID_SYMBOL) from None
    if len(wanted) > MAX_SYMBOLS_PER_REQUEST:
        raise _bad_query(f"{too_many}, got {len(wanted)}")
    try:
        found = await service.prices.get_many(wanted)
    except RedisClientError as exc:
        raise _redis_unavailable(exc) from None
    now = time.time()
    return PricesResponse(
        prices={s: _with_age(p, now) for s, p in found.items() if p is not None},
        missing=[s for s, p in found.items() if p is None],
    )


def _bad_query(message: str, code: ErrorCode = ErrorCode.INVALID_REQUEST) -> ProblemError:
    return ProblemError(422, f"query.symbols: {message}", code)


def _with_age(price: PriceData, now: float) -> PriceResponse:
    try:
        age: float | None = round(price_age_seconds(price, now), 6)
    except ValueError:
        age = None  # the feed's timestamp only looked like one; the price still stands
    return PriceResponse(**price.model_dump(), age_seconds=age)


def _no_price(service: MarketDataService, symbol: str) -> str:
    if symbol not in service.stream.get_subscribed_symbols():
        return (
            f"no fresh price for {symbol}: it is not subscribed "
            f"(subscribe with POST /api/v1/subscribe)"
        )
    return (
        f"no fresh price for {symbol}: no quote cached within the last "
        f"{service.settings.price_cache_ttl}s (PRICE_CACHE_TTL)"
    )


def _redis_unavailable(exc: RedisClientError) -> ProblemError:
    # The message names the Redis address with the password redacted, never the secret.
    return ProblemError(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        f"cannot read prices: {exc}",
        ErrorCode.REDIS_UNAVAILABLE,
    )
