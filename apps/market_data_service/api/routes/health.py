"""``GET /health`` (the spec's fields plus state, reason and counters) and the probes
``GET /health/live`` and ``GET /health/ready``."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from apps.market_data_service.api.dependencies import ServiceDep
from apps.market_data_service.api.errors import ErrorCode, ProblemError, problems
from apps.market_data_service.api.schemas import (
    GapFillHealth,
    HealthResponse,
    HealthStats,
    LiveResponse,
    PositionSyncHealth,
    ReadyResponse,
)
from apps.market_data_service.api.schemas.health import QuoteAges
from apps.market_data_service.api.schemas.leadership import LeadershipHealth
from apps.market_data_service.api.schemas.stream import StreamingHealth
from apps.market_data_service.observability.cache_health import probe_cache
from apps.market_data_service.service import MarketDataService
from libs.market_data import ConnectionState, native

__all__ = ["router"]

router = APIRouter()


@router.get(
    "/health",
    response_model=HealthResponse,
    summary="Service health",
    responses={
        503: {
            "model": HealthResponse,
            "description": "`unhealthy`: the stream gave up (credentials refused, attempts "
            "exhausted); restart the service",
        }
    },
)
async def health(service: ServiceDep, response: Response) -> HealthResponse:
    """The spec's health fields, plus the connection state, the reason when not
    `healthy`, the stream's counters, per-symbol quote ages, the price cache and the
    positions sync. 200 `healthy` or `degraded` (route around it), 503 `unhealthy`
    (restart). Answers within half a second even when Redis hangs. Never needs the API
    key."""
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
    # A standby (docs/leadership.md) streams nothing: healthy when it sees a live leader.
    election = None if service.election is None else service.election.view()
    if election is not None and election.role == "standby":
        reason = election.standby_problem() or (
            None if service.subscriptions.restored else "subscriptions not restored yet"
        )
        health_status = "healthy" if reason is None else "degraded"
        response.status_code = status.HTTP_200_OK
    # Positions sync (docs/positions.md): while it fails, an otherwise healthy service is
    # degraded: its subscriptions may no longer match the open positions.
    position_sync = PositionSyncHealth.of(service.position_sync)
    if position_sync.consecutive_failures and health_status == "healthy":
        health_status = "degraded"
        reason = f"positions sync failing: {position_sync.last_error}"
    ages, quote_ages = _quote_ages(service)
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
        stats=HealthStats.model_validate(stats.as_dict()),
        position_sync=position_sync,
        quote_path=native.path(),
        role="single" if election is None else election.role,
        leadership=None if election is None else LeadershipHealth.of(election),
        # Shown, never degrading: a skipped fill leaves streaming as it was.
        gap_fill=GapFillHealth.of(stream.gap_fill),
        streaming=StreamingHealth.of(service.stream_hub.stats()),
        last_update_age_seconds=ages,
        quote_ages=quote_ages,
        # Cache health (issue 5): Redis ping, fresh/stale/missing subscribed prices (the
        # named ones, at most _PROBED: the wildcard's are summed up in quote_ages).
        cache=await probe_cache(
            service.redis_client,
            stream.named_quote_symbols()[:_PROBED],
            stale_after=service.settings.price_cache_ttl,
            keys=stream.keys,  # REDIS_NAMESPACE's names, as the stream writes them
        ),
    )


# /health stays small and quick with 10,000+ symbols (docs/architecture.md, "The whole
# market"): every named symbol's age up to _LISTED of them (what `market-data status
# --all` shows), else the quiet and stalest few; the cache probe reads at most _PROBED.
_LISTED = 1000
_FEW = 10
_PROBED = 1000


def _quote_ages(service: MarketDataService) -> tuple[dict[str, float | None], QuoteAges]:
    stream = service.stream
    named = stream.last_update_ages()
    listed = len(named) <= _LISTED
    if not listed:
        quiet = [s for s, age in named.items() if age is None][:_FEW]
        aged = sorted((age, s) for s, age in named.items() if age is not None)
        named = {s: named[s] for s in [*quiet, *(s for _, s in aged[-_FEW:])]}
    tracked, stalest = stream.age_summary(limit=_FEW)
    summary = QuoteAges(
        symbols_tracked=tracked,
        symbols_named=len(stream.named_quote_symbols()),
        wildcard=stream.wildcard,
        listed=listed,
        stalest={symbol: round(age, 3) for symbol, age in stalest},
    )
    ages = {s: None if age is None else round(age, 3) for s, age in named.items()}
    return ages, summary


@router.get("/health/live", response_model=LiveResponse, summary="Liveness probe")
async def live() -> LiveResponse:
    """200 while the process serves HTTP, whatever the feed and Redis do: restart the
    service only when this fails. Never needs the API key."""
    return LiveResponse(status="alive")


@router.get(
    "/health/ready",
    response_model=ReadyResponse,
    summary="Readiness probe",
    responses=problems(
        {503: "Not ready (`not_ready`); `detail` says why: the feed, Redis, or the restore"}
    ),
)
async def ready(service: ServiceDep) -> ReadyResponse:
    """200 only when the service can serve: the broker feed is connected, Redis takes
    the price writes, and the saved subscriptions are restored. Otherwise 503 with every
    reason in `detail`: route traffic elsewhere meanwhile. Decided from state the service
    holds (never waits on Redis). Never needs the API key."""
    reasons = not_ready_reasons(service)
    if reasons:
        raise ProblemError(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"not ready: {'; '.join(reasons)}",
            ErrorCode.NOT_READY,
        )
    return ReadyResponse(status="ready")


def not_ready_reasons(service: MarketDataService) -> list[str]:
    """Why the service cannot serve now; empty when it can."""
    connection = service.stream.stats().connection
    reasons: list[str] = []
    election = None if service.election is None else service.election.view()
    if election is not None and election.role == "standby":
        problem = election.standby_problem()  # a standby serves reads; no feed of its own
        return [problem] if problem else []
    if connection.state is ConnectionState.FAILED:
        reasons.append(f"the stream gave up: {connection.last_error}")
    elif connection.state is not ConnectionState.CONNECTED:
        reasons.append(f"stream {connection.state.value}: {connection.last_error or 'starting'}")
    redis_problem = service.stream.sink.problem()
    if redis_problem is not None:
        reasons.append(redis_problem)
    if not service.subscriptions.restored:
        reasons.append(
            f"subscriptions not restored yet: {service.subscriptions.last_error or 'reading'}"
        )
    return reasons
