"""``GET /metrics``: Prometheus exposition of the service's counters, built at scrape time."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from apps.market_data_service.api.dependencies import ServiceDep
from apps.market_data_service.observability.metrics import render

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/metrics",
    response_class=Response,
    summary="Prometheus metrics",
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text format (OpenMetrics when the Accept header asks)",
        }
    },
)
async def metrics(service: ServiceDep, request: Request) -> Response:
    """Every `market_data_` metric, read from the pipeline's own counters at scrape time
    (docs/observability.md lists them). The format follows the `Accept` header, as
    Prometheus negotiates it."""
    # async def on purpose: the collector then reads the counters on the event loop
    # thread that changes them, never halfway through an update. The Accept header is
    # read here rather than declared: it cannot be invalid, so no 422 to document.
    body, content_type = render(service.metrics_registry, request.headers.get("accept"))
    return Response(content=body, media_type=content_type)
