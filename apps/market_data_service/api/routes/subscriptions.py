"""Subscribe, unsubscribe and list: the manual source of the subscription registry."""

from __future__ import annotations

from fastapi import APIRouter, status

from apps.market_data_service.api.dependencies import ServiceDep
from apps.market_data_service.api.errors import (
    ErrorCode,
    ProblemError,
    SubscriptionRefused,
    problems,
    symbol_message,
)
from apps.market_data_service.api.schemas import (
    SubscribeRequest,
    SubscribeResponse,
    SubscriptionsResponse,
    SymbolPath,
    UnsubscribeResponse,
)
from libs.market_data import InvalidSymbolError, SubscriptionError, normalize_symbol
from libs.market_data.subscriptions.registry import SubscriptionSource

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

_BROKER_ERROR = "The broker answered with another error (`broker_error`, named in `detail`)"


@router.post(
    "/subscribe",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscribeResponse,
    summary="Subscribe to symbols",
    responses={
        **problems(
            {
                400: "The body cannot be read (not UTF-8) (`invalid_json`)",
                422: "A bad body: not JSON, an unknown field, a bad ticker, none or more "
                "than 100 symbols (`invalid_json`, `unknown_field`, `invalid_symbol`, "
                "`invalid_request`)",
                502: _BROKER_ERROR,
            }
        ),
        **problems(
            {
                409: "The broker refused symbols (`subscription_refused`): they are in "
                "`refused_symbols`; earlier subscriptions stand"
            },
            SubscriptionRefused,
        ),
    },
)
async def subscribe(body: SubscribeRequest, service: ServiceDep) -> SubscribeResponse:
    """Subscribe by hand (source `manual`). Answers once the broker confirmed every
    symbol; symbols already subscribed are not an error. Bad input never reaches the
    broker. If the broker refuses (Alpaca's symbol limit, error 405), nothing of this
    request is added and the answer is a 409 naming the refused symbols."""
    stream = service.stream
    try:
        await service.subscriptions.add(body.symbols, SubscriptionSource.MANUAL)
    except SubscriptionError as exc:
        raise ProblemError(
            status.HTTP_409_CONFLICT,
            f"the broker refused the subscription: {exc.msg} ({exc.code})",
            ErrorCode.SUBSCRIPTION_REFUSED,
            refused_symbols=exc.symbols,
            total_subscriptions=len(stream.get_subscribed_symbols()),
        ) from None
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
    response_model_exclude_none=True,
    summary="Release a hand subscription",
    responses=problems(
        {
            404: "Not subscribed by hand (`not_found`); `detail` names the sources that "
            "hold it, if any",
            422: "Not a ticker (`invalid_symbol`)",
            502: _BROKER_ERROR,
        }
    ),
)
async def unsubscribe(
    symbol: SymbolPath,
    service: ServiceDep,
) -> UnsubscribeResponse:
    """Release the `manual` subscription of a symbol. The symbol leaves the broker only
    when no other source holds it: when open positions still hold it, it stays
    subscribed, and the answer says so (`still_held_by`)."""
    try:
        normalized = normalize_symbol(symbol)
    except InvalidSymbolError as exc:
        raise ProblemError(
            422, f"path.symbol: {symbol_message(exc)}", ErrorCode.INVALID_SYMBOL
        ) from None
    released = await service.subscriptions.remove([normalized], SubscriptionSource.MANUAL)
    held_by = service.subscriptions.sources().get(normalized)
    if not released:
        detail = f"not subscribed to {normalized}"
        if held_by:
            detail = f"{normalized} is not subscribed by hand (held by: {', '.join(held_by)})"
        raise ProblemError(status.HTTP_404_NOT_FOUND, detail, ErrorCode.NOT_FOUND)
    remaining = len(service.stream.get_subscribed_symbols())
    if held_by:
        return UnsubscribeResponse(
            message=(
                f"Released {normalized} ({SubscriptionSource.MANUAL.value}); "
                f"still subscribed: held by {', '.join(held_by)}"
            ),
            remaining_subscriptions=remaining,
            still_held_by=held_by,
        )
    return UnsubscribeResponse(
        message=f"Successfully unsubscribed from {normalized}",
        remaining_subscriptions=remaining,
    )


@router.get(
    "/subscriptions", response_model=SubscriptionsResponse, summary="List the subscriptions"
)
async def subscriptions(service: ServiceDep) -> SubscriptionsResponse:
    """Every subscribed symbol, sorted, with the sources that hold it: `manual` (this
    API) and `positions` (an open position)."""
    symbols = service.stream.get_subscribed_symbols()
    return SubscriptionsResponse(
        symbols=symbols, count=len(symbols), sources=service.subscriptions.sources()
    )
