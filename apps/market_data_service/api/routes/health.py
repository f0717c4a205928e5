"""``GET /health``: the spec's fields plus state, reason and counters."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from apps.market_data_service.api.dependencies import ServiceDep
from apps.market_data_service.api.schemas import HealthResponse, PositionSyncHealth
from apps.market_data_service.observability.cache_health import probe_cache
from libs.market_data import ConnectionState

__all__ = ["router"]

router = APIRouter()


@router.get("/health", response_model=HealthResponse, responses={503: {"model": HealthResponse}})
async def health(service: ServiceDep, response: Response) -> HealthResponse:
    stream = service.stream
    stats = stream.stats()
    connection = stats.connection
    state = connection.state
    redis_ok = stats.sink.redis_connected
    # Every condition below comes from state the service already holds: /health never
    # waits on a hung Redis to decide (docs/architecture.md, "Redis faults").
    redis_problem = stream.sink.problem()
    reason: str | None = None
    if state is ConnectionState.FAILED:
        health_status = "unhealthy"
        reason = connection.last_error
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    elif redis_problem is not None:
        health_status = "degraded"
        reason = redis_problem
    elif not service.subscriptions.restored:
        health_status = "degraded"
        reason = f"subscriptions not restored yet: {service.subscriptions.last_error}"
    elif state is not ConnectionState.CONNECTED:
        health_status = "degraded"
        reason = f"stream {state.value}: {connection.last_error or 'starting'}"
    else:
        health_status = "healthy"
    # Positions sync (docs/positions.md): while it fails, an otherwise healthy service is
    # degraded: its subscriptions may no longer match the open positions.
    position_sync = PositionSyncHealth.of(service.position_sync)
    if position_sync.consecutive_failures and health_status == "healthy":
        health_status = "degraded"
        reason = f"positions sync failing: {position_sync.last_error}"
    return HealthResponse(
        status=health_status,
        service=service.settings.service_name,
        websocket_connected=connection.connected,
        subscribed_symbols=connection.subscribed_symbols,
        reconnect_attempts=connection.reconnect_attempts,
        max_reconnect_attempts=connection.max_reconnect_attempts,
        state=state.value,
        reason=reason,
        redis_connected=redis_ok,
        stats=stats.as_dict(),
        position_sync=position_sync,
        last_update_age_seconds={
            symbol: None if age is None else round(age, 3)
            for symbol, age in stream.last_update_ages().items()
        },
        # Cache health (issue 5): Redis ping, fresh/stale/missing subscribed prices.
        cache=await probe_cache(
            service.redis_client,
            stream.get_subscribed_symbols(),
            stale_after=service.settings.price_cache_ttl,
            keys=stream.keys,
        ),
    )
