"""``GET /api/v1/positions/pnl/realtime``: open positions priced from the Redis cache.

Positions come from the broker, read at most once a second however often the endpoint
is called (the account's 200 requests a minute are shared with order entry). A position
whose symbol has no cached price falls back to the previous daily close from the data
API's snapshots, and to ``unavailable`` when neither exists. The arithmetic and rounding
are :mod:`libs.market_data.pnl.compute`'s.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

from fastapi import APIRouter

from apps.market_data_service.api.dependencies import ServiceDep
from apps.market_data_service.api.schemas import (
    PositionPnLItem,
    RealtimePnLResponse,
    RealtimePnLTotals,
)
from libs.market_data.broker.rest import PreviousClose
from libs.market_data.exceptions import BrokerAPIError, InvalidSymbolError
from libs.market_data.pnl.compute import compute_pnl
from libs.market_data.symbols import normalize_symbol
from libs.market_data.types import PriceData, format_timestamp
from libs.redis_client import RedisClientError

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")

_CACHE_READ_CHUNK: Final = 500  # below PriceCache's per-read limit


@router.get(
    "/positions/pnl/realtime",
    response_model=RealtimePnLResponse,
    responses={502: {"description": "The broker's positions API failed (named in detail)"}},
)
async def realtime_pnl(service: ServiceDep) -> RealtimePnLResponse:
    # A BrokerAPIError here becomes a 502 naming it (main.py's MarketDataError handler).
    fetched, read_at = await service.recent_positions.get()
    positions = sorted(fetched, key=lambda p: p.symbol)
    symbols: list[str] = []
    for position in positions:
        try:
            symbols.append(normalize_symbol(position.symbol))
        except InvalidSymbolError:
            continue  # not a ticker we can look up: priced as unavailable
    symbols = list(dict.fromkeys(symbols))

    realtime: dict[str, PriceData | None] = {}
    cache_error: str | None = None
    try:
        for start in range(0, len(symbols), _CACHE_READ_CHUNK):
            realtime.update(
                await service.prices.get_many(symbols[start : start + _CACHE_READ_CHUNK])
            )
    except RedisClientError as exc:
        # Redis down: every position falls back to its previous close rather than failing.
        cache_error = f"price cache unavailable: {exc}"
        realtime = {}

    closing: dict[str, PreviousClose] = {}
    closing_error: str | None = None
    missing = [s for s in symbols if realtime.get(s) is None]
    if missing:
        try:
            closing = await service.previous_closes.get(missing)
        except BrokerAPIError as exc:
            closing_error = str(exc)

    report = compute_pnl(positions, realtime, closing)
    totals = report.totals
    return RealtimePnLResponse(
        positions=[
            PositionPnLItem(
                symbol=row.symbol,
                side=row.side.value,
                qty=row.qty,
                avg_entry_price=row.avg_entry_price,
                current_price=row.current_price,
                price_source=row.price_source.value,
                price_timestamp=row.price_timestamp,
                price_age_seconds=row.price_age_seconds,
                cost_basis=row.cost_basis,
                market_value=row.market_value,
                unrealized_pl=row.unrealized_pl,
                unrealized_pl_pct=row.unrealized_pl_pct,
            )
            for row in report.positions
        ],
        totals=RealtimePnLTotals(
            positions=totals.positions,
            priced_positions=totals.priced_positions,
            total_cost_basis=totals.total_cost_basis,
            total_market_value=totals.total_market_value,
            total_unrealized_pl=totals.total_unrealized_pl,
            total_unrealized_pl_pct=totals.total_unrealized_pl_pct,
        ),
        as_of=format_timestamp(datetime.fromtimestamp(read_at, UTC)),
        cache_error=cache_error,
        closing_prices_error=closing_error,
    )
