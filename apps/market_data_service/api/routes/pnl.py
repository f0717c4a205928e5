"""``GET /api/v1/positions/pnl/realtime``: open positions priced from the Redis cache.

The gathering (positions, cached prices, previous closes) and the arithmetic are
:mod:`libs.market_data.pnl`'s; this route only answers with the result
(docs/positions.md).
"""

from __future__ import annotations

from fastapi import APIRouter

from apps.market_data_service.api.dependencies import ServiceDep
from apps.market_data_service.api.schemas import RealtimePnLResponse

__all__ = ["router"]

router = APIRouter(prefix="/api/v1")


@router.get(
    "/positions/pnl/realtime",
    response_model=RealtimePnLResponse,
    responses={502: {"description": "The broker's positions API failed (named in detail)"}},
)
async def realtime_pnl(service: ServiceDep) -> RealtimePnLResponse:
    # A BrokerAPIError here becomes a 502 naming it (main.py's MarketDataError handler).
    result = await service.pnl.realtime()
    return RealtimePnLResponse.model_validate(result, from_attributes=True)
