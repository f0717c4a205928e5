"""The service's composition root: builds the parts from the settings, starts and stops them.

Routes get this object (``dependencies.ServiceDep``) and stay thin; everything with a
lifecycle (Redis connections, the stream task, background jobs) is owned here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from apps.market_data_service.config import Settings
from apps.market_data_service.election import Election
from apps.market_data_service.observability.metrics import build_registry
from apps.market_data_service.observability.stream_metrics import StreamCollector
from apps.market_data_service.streaming import StreamHub, TicketBook
from libs.market_data import AlpacaMarketDataStream, MarketDataError
from libs.market_data.broker import AlpacaRestClient, PreviousCloseCache, RecentPositions
from libs.market_data.cache.price_cache import PriceCache
from libs.market_data.gapfill import GapFillPolicy
from libs.market_data.pnl.service import PnLService
from libs.market_data.stream.failures import TakeoverSchedule
from libs.market_data.subscriptions.positions import PositionBasedSubscription
from libs.market_data.subscriptions.registry import SubscriptionRegistry
from libs.redis_client import EventPublisher, RedisClient
from libs.redis_client.cluster import ClusterRedisClient
from libs.tasks import cancel_and_wait

__all__ = ["MarketDataService"]

logger = logging.getLogger(__name__)

_RESTORE_AT_START = 1.0  # seconds; past it the restore goes on in the background
# Longer than any step's own bounded wait (the stream's flush and close: 5 s each).
_STOP_STEP_BUDGET = 12.0


async def _bounded(
    step: str, work: Coroutine[Any, Any, None], budget: float = _STOP_STEP_BUDGET
) -> None:
    """Run one shutdown step for at most ``budget`` seconds; past it, log and go on."""
    try:
        async with asyncio.timeout(budget):
            await work
    except TimeoutError:
        logger.error("shutdown step %r did not finish within %gs; going on", step, budget)


class MarketDataService:
    """The running service: stream, Redis clients, subscriptions and price reads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # REDIS_CLUSTER_NODES: every part below runs on the cluster (docs/cluster.md).
        cluster = settings.cluster_params()
        self.redis_client = (
            RedisClient(params=settings.redis_params())
            if cluster is None
            else ClusterRedisClient(cluster)
        )
        self.publisher = EventPublisher(client=self.redis_client)
        # The broker's REST API: positions (docs/positions.md) and the gap fill's latest
        # quotes (docs/architecture.md, "Gap fill").
        self.broker = AlpacaRestClient(
            settings.alpaca_api_key.get_secret_value(),
            settings.alpaca_secret_key.get_secret_value(),
            base_url=settings.alpaca_base_url,
            data_base_url=settings.alpaca_data_base_url,
            feed=settings.alpaca_data_feed,
            crypto_location=settings.alpaca_crypto_feed,  # the crypto REST's {loc}
            timeout=settings.alpaca_rest_timeout,
        )
        # Leader election (docs/leadership.md): None with LEADER_ELECTION=off.
        self.election = (
            Election(settings, self.redis_client) if settings.leader_election == "redis" else None
        )
        self.stream = AlpacaMarketDataStream(
            api_key=settings.alpaca_api_key.get_secret_value(),
            secret_key=settings.alpaca_secret_key.get_secret_value(),
            redis_client=self.redis_client,
            event_publisher=self.publisher,
            price_ttl=settings.price_cache_ttl,
            url=settings.stream_url,
            crypto_url=settings.crypto_stream_url,
            max_reconnect_attempts=settings.max_reconnect_attempts,
            reconnect_base_delay=settings.reconnect_base_delay,
            reconnect_max_delay=settings.reconnect_max_delay,
            stall_timeout=settings.stall_timeout or None,
            namespace=settings.redis_namespace,
            redis_write_timeout=settings.redis_write_timeout,
            connection_guard=None if self.election is None else self.election.guard,
            # A leader's 406 at a takeover is the old leader's socket (docs/leadership.md).
            takeover=None
            if self.election is None
            else TakeoverSchedule(cap=settings.leader_lease_ttl),
            latest_quotes=self.broker if settings.gap_fill_on else None,
            gap_fill=GapFillPolicy(
                timeout=settings.gap_fill_timeout, max_calls=settings.gap_fill_max_calls
            ),
        )
        keys = self.stream.keys
        self.subscriptions = SubscriptionRegistry(
            self.stream, self.redis_client, key=keys.subscriptions_key
        )
        self.prices = PriceCache(self.redis_client, keys)
        # Positions (docs/positions.md): real-time P&L, and the sync task.
        self.pnl = PnLService(
            RecentPositions(self.broker), self.prices, PreviousCloseCache(self.broker)
        )
        self.position_sync = (
            PositionBasedSubscription(
                self.broker, self.subscriptions, interval=settings.position_sync_interval
            )
            if settings.position_sync_on
            else None
        )
        self.metrics_registry = build_registry(self.stream, self.prices)
        # The live stream (docs/streaming.md): its Redis reader starts with the first client.
        self.stream_hub = StreamHub(cluster or settings.redis_params(), keys)
        self.metrics_registry.register(StreamCollector(self.stream_hub))
        self.stream_tickets = TicketBook()
        self._tasks: list[asyncio.Task[None]] = []
        if self.election is not None:
            self.election.attach(self)

    async def start(self) -> None:
        """Restore the saved subscriptions, then connect in the background.

        A Redis that does not answer at once does not hold up the start: the registry
        keeps retrying in the background and ``/health`` says so meanwhile.
        """
        await self.subscriptions.restore(timeout=_RESTORE_AT_START)
        if self.election is not None:
            await self.election.start()  # the leader's work starts once elected
            return
        await self.start_duties()

    async def start_duties(self) -> None:
        """The leader's work (a single instance's too): subscription upkeep, the position
        sync, the broker stream."""
        self._tasks.append(
            asyncio.create_task(
                self.subscriptions.maintain(
                    self.settings.subscription_check_interval, on_lost=self._cache_lost
                ),
                name="subscriptions-maintain",
            )
        )
        if self.position_sync is not None:
            self.position_sync.start()
        self._tasks.append(asyncio.create_task(self._run_stream(), name="market-data-stream"))

    def _cache_lost(self) -> None:
        # The saved subscriptions vanished, so Redis lost its data: prices included.
        count = self.stream.sink.resend_latest()
        logger.warning("Redis lost its data; rewriting the newest price of %d symbols", count)

    async def _run_stream(self) -> None:
        try:
            await self.stream.start()
        except MarketDataError as exc:
            # The state (FAILED) and reason stay visible in /health; the service keeps serving.
            logger.error("market data stream stopped: %s", exc)

    async def stop(self) -> None:
        """Close the socket cleanly, flush Redis writes, cancel background work; a leader
        then releases the lease, so a standby takes over at once.

        Each step is bounded: a SIGTERM must end the process even if one part hangs
        (the step is named in the log, and the rest still runs).
        """
        if self.election is not None:
            await _bounded("election", self.election.stop())  # a leader's work first
        await _bounded("duties", self.stop_duties())
        await _bounded("stream hub", self.stream_hub.stop())
        await _bounded("broker client", self.broker.aclose())
        await _bounded("publisher", self.publisher.close())
        await _bounded("redis client", self.redis_client.close())

    async def stop_duties(self) -> None:
        """Stop the leader's work: position sync, stream (socket closed, writes flushed)."""
        if self.position_sync is not None:
            # First: a sync racing the shutdown would subscribe on a closing stream.
            await self.position_sync.stop()
        await self.stream.stop()
        await cancel_and_wait(*self._tasks)
        self._tasks.clear()
