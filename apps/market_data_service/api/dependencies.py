"""FastAPI dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from apps.market_data_service.service import MarketDataService

__all__ = ["ServiceDep", "get_service"]


def get_service(request: Request) -> MarketDataService:
    service: MarketDataService = request.app.state.service
    return service


ServiceDep = Annotated[MarketDataService, Depends(get_service)]
