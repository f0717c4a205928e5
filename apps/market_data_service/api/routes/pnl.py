"""``GET /api/v1/positions/pnl/realtime``: open positions priced from the Redis cache.

The gathering (positions, cached prices, previous closes) and the arithmetic are
:mod:`libs.market_data.pnl`'s; this route only answers with the result
(docs/positions.md).
"""

from __future__ import annotations

from fastapi import APIRouter

from apps.market_data_service.api.dependencies import ServiceDep
from apps.market_data_service.api.errors import problems
from apps.market_data_service.api.schemas import RealtimePnLResponse

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


@router.get(
    "/positions/pnl/realtime",
    response_model=RealtimePnLResponse,
    summary="Real-time P&L of the open positions",
    responses=problems(
        {502: "The broker's positions API failed (`broker_error`, named in `detail`)"}
    ),
)
async def realtime_pnl(service: ServiceDep) -> RealtimePnLResponse:
    """Each open position (Alpaca's `/v2/positions`) priced with the cached mid price
    (`realtime`), else the previous daily close (`closing`), else `unavailable`; then
    totals. Money is rounded once to the cent (half-even), percents to 4 places; every
    decimal is an exact string."""
    # A BrokerAPIError here becomes a 502 naming it (errors.py's MarketDataError handler).
    result = await service.pnl.realtime()
    return RealtimePnLResponse.model_validate(result, from_attributes=True)
