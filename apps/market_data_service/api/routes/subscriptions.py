"""Subscribe, unsubscribe and list: the manual source of the subscription registry."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

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
from libs.market_data import InvalidSymbolError, SubscriptionError
from libs.market_data.subscriptions.registry import SubscriptionSource
from libs.market_data.topics import Channel, normalize_topics, parse_topic, topic_symbols

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

_BROKER_ERROR = "The broker answered with another error (`broker_error`, named in `detail`)"


@router.post(
    "/subscribe",
    status_code=status.HTTP_201_CREATED,
    response_model=SubscribeResponse,
    response_model_exclude_none=True,
    summary="Subscribe to symbols",
    responses={
        **problems(
            {
                400: "The body cannot be read (not UTF-8) (`invalid_json`)",
                422: "A bad body: not JSON, an unknown field, a bad ticker, an option "
                "symbol (out of scope), an unknown channel, none or more than 100 symbols "
                "(`invalid_json`, `unknown_field`, `invalid_symbol`, `invalid_request`)",
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
    """Subscribe by hand (source `manual`) on `channels` (default `quotes`). `*` is the
    whole stock market; crypto pairs (`BTC/USD`) go to the crypto feed. Answers once the
    broker confirmed every symbol; symbols already subscribed are not an error. Bad input
    never reaches the broker. If the broker refuses (Alpaca's symbol limit, error 405),
    nothing of this request is added and the answer is a 409 naming the refused symbols."""
    stream = service.stream
    topics = normalize_topics(body.symbols, body.channels)
    try:
        await service.subscriptions.add(topics, SubscriptionSource.MANUAL)
    except SubscriptionError as exc:
        raise ProblemError(
            status.HTTP_409_CONFLICT,
            f"the broker refused the subscription: {exc.msg} ({exc.code})",
            ErrorCode.SUBSCRIPTION_REFUSED,
            refused_symbols=list(dict.fromkeys(parse_topic(t)[1] for t in exc.symbols)),
            total_subscriptions=len(stream.get_subscribed_symbols()),
        ) from None
    return SubscribeResponse(
        message=f"Successfully subscribed to {len(body.symbols)} symbols",
        subscribed_symbols=body.symbols,
        channels=None if body.channels == ["quotes"] else list(body.channels),
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
    channels: Annotated[
        list[Literal["quotes", "trades", "bars"]] | None,
        Query(description="The channels to release (default: all of them)."),
    ] = None,
) -> UnsubscribeResponse:
    """Release the `manual` subscription of a symbol (or of `*`, the whole market: the
    named symbols stay), on `channels` or all of them. The symbol leaves the broker only
    when no other source holds it: when open positions still hold it, it stays
    subscribed, and the answer says so (`still_held_by`)."""
    wanted = list(Channel) if not channels else [Channel(c) for c in channels]
    try:
        (normalized,) = normalize_topics([symbol])
        topics = normalize_topics([normalized], wanted)
    except InvalidSymbolError as exc:
        raise ProblemError(
            422, f"path.symbol: {symbol_message(exc)}", ErrorCode.INVALID_SYMBOL
        ) from None
    released = await service.subscriptions.remove(topics, SubscriptionSource.MANUAL)
    held_by = _symbol_sources(service.subscriptions.sources()).get(normalized)
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
    "/subscriptions",
    response_model=SubscriptionsResponse,
    response_model_exclude_none=True,
    summary="List the subscriptions",
)
async def subscriptions(service: ServiceDep) -> SubscriptionsResponse:
    """Every subscribed symbol, sorted (`*`: the whole stock market), with the sources
    that hold it, `manual` (this API) and `positions` (an open position), and its
    channels (`quotes`, `trades`, `bars`)."""
    symbols = service.stream.get_subscribed_symbols()
    held = service.subscriptions.sources()
    channels = topic_symbols(held)
    plain = all(c == ["quotes"] for c in channels.values()) and "*" not in channels
    return SubscriptionsResponse(
        symbols=symbols,
        count=len(symbols),
        sources=_symbol_sources(held),
        channels=None if plain else channels,
    )


def _symbol_sources(topics: dict[str, list[str]]) -> dict[str, list[str]]:
    """Topic -> sources as symbol -> the sources holding it on any channel."""
    by_symbol: dict[str, set[str]] = {}
    for topic, sources in topics.items():
        by_symbol.setdefault(parse_topic(topic)[1], set()).update(sources)
    return {symbol: sorted(by_symbol[symbol]) for symbol in sorted(by_symbol)}
