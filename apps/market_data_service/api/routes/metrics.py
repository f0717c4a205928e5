"""``GET /metrics``: Prometheus exposition of the service's counters, built at scrape time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response

from apps.market_data_service.api.dependencies import ServiceDep
from apps.market_data_service.observability.metrics import render

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
async def metrics(service: ServiceDep, accept: Annotated[str | None, Header()] = None) -> Response:
    # async def on purpose: the collector then reads the counters on the event loop
    # thread that changes them, never halfway through an update.
    body, content_type = render(service.metrics_registry, accept)
    return Response(content=body, media_type=content_type)
