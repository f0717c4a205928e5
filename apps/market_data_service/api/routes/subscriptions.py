"""Subscribe, unsubscribe and list: the manual source of the subscription registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.responses import JSONResponse

from apps.market_data_service.api.dependencies import ServiceDep
from apps.market_data_service.api.schemas import (
    SYMBOL_PATTERN,
    SubscribeRequest,
    SubscribeResponse,
    SubscriptionsResponse,
    UnsubscribeResponse,
)
from libs.market_data import InvalidSymbolError, SubscriptionError, normalize_symbol
from libs.market_data.subscriptions.registry import SubscriptionSource

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


@router.post(
    "/subscribe",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscribeResponse,
    responses={
        400: {"description": "The body cannot be parsed (not UTF-8 JSON)"},
        409: {"description": "The broker refused the subscription"},
        502: {"description": "The broker answered with another error"},
    },
)
async def subscribe(
    body: SubscribeRequest, service: ServiceDep
) -> SubscribeResponse | JSONResponse:
    stream = service.stream
    try:
        await service.subscriptions.add(body.symbols, SubscriptionSource.MANUAL)
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


@router.delete(
    # ":path" so a ticker with a slash (BTC/USD, allowed by normalize_symbol) can be
    # unsubscribed as well as subscribed; a plain parameter stops at the "/".
    "/subscribe/{symbol:path}",
    response_model=UnsubscribeResponse,
    responses={404: {"description": "Not subscribed"}, 422: {"description": "Not a ticker"}},
)
async def unsubscribe(
    symbol: Annotated[str, Path(max_length=64, json_schema_extra={"pattern": SYMBOL_PATTERN})],
    service: ServiceDep,
) -> UnsubscribeResponse:
    try:
        normalized = normalize_symbol(symbol)
    except InvalidSymbolError as exc:
        # 422 as a number: Starlette renamed (and deprecated) the constant.
        raise HTTPException(422, str(exc)) from None
    released = await service.subscriptions.remove([normalized], SubscriptionSource.MANUAL)
    if not released:
        held_by = service.subscriptions.sources().get(normalized)
        detail = f"not subscribed to {normalized}"
        if held_by:
            detail = f"{normalized} is not subscribed by hand (held by: {', '.join(held_by)})"
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail)
    return UnsubscribeResponse(
        message=f"Successfully unsubscribed from {normalized}",
        remaining_subscriptions=len(service.stream.get_subscribed_symbols()),
    )


@router.get("/subscriptions", response_model=SubscriptionsResponse)
async def subscriptions(service: ServiceDep) -> SubscriptionsResponse:
    symbols = service.stream.get_subscribed_symbols()
    return SubscriptionsResponse(
        symbols=symbols, count=len(symbols), sources=service.subscriptions.sources()
    )
