"""The service's part in leader election (``LEADER_ELECTION=redis``, docs/leadership.md).

Wires :class:`~libs.market_data.leadership.LeaderElector` to the service: on becoming
leader the registry takes the saved set, the stream takes the lease's epoch, a
``leader.changed`` notice goes out on the fenced writer, and the leader's work starts
(stream, subscription upkeep, position sync); on stepping down that work stops and the
registry mirrors the saved set again, sending changes to the leader. One pub/sub
connection (:class:`~libs.market_data.leadership.Mailbox`) carries the leader's requests,
this instance's replies and the ``leader.released`` notices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from apps.market_data_service.config import Settings
from libs.market_data.heartbeat import Heartbeat
from libs.market_data.leadership import (
    Change,
    EpochGuard,
    LeaderElector,
    Mailbox,
    RequestDesk,
    RequestForwarder,
    Role,
)
from libs.market_data.leadership.requests import is_release_notice
from libs.market_data.pipeline.sinks import keyspace_for
from libs.market_data.subscriptions.registry import SubscriptionSource
from libs.redis_client import RedisClient, RedisClientError
from libs.redis_client.cluster import ClusterRedisClient
from libs.tasks import cancel_and_wait

if TYPE_CHECKING:
    from apps.market_data_service.service import MarketDataService

__all__ = ["Election", "LeadershipView"]

logger = logging.getLogger(__name__)

_MIRROR_INTERVAL: Final = 1.0  # seconds between a standby's reads of the saved set
_REQUEST_TIMEOUT: Final = 5.0  # seconds a standby waits for the leader's answer


@dataclass(frozen=True, slots=True)
class LeadershipView:
    """What ``/health`` shows of the election."""

    role: str
    instance_id: str
    leader_id: str | None
    epoch: int | None
    lease_remaining_seconds: float | None
    leader_live: bool
    last_error: str | None

    def standby_problem(self) -> str | None:
        """Why a standby is not healthy (None: it reaches Redis and sees a live leader)."""
        if self.leader_live:
            return None
        why = f" ({self.last_error})" if self.last_error else ""
        return f"standby: no live leader seen{why}"


class Election:
    """Starts and stops the leader's work as this instance's role changes."""

    def __init__(self, settings: Settings, client: RedisClient) -> None:
        # The cluster's names on a Redis Cluster (docs/leadership.md, "On a Redis Cluster").
        self.keys = keyspace_for(client, settings.redis_namespace)
        self.instance_id = settings.instance_id
        self._client = client
        self.elector = LeaderElector(
            client,
            self.keys,
            settings.instance_id,
            settings.leader_lease_ttl,
            on_elected=self._elected,
            on_demoted=self._demoted,
        )
        self.forwarder = RequestForwarder(
            client, self.keys, settings.instance_id, self._leader_live, _REQUEST_TIMEOUT
        )
        self._service: MarketDataService | None = None
        self._desk: RequestDesk | None = None
        self._mailbox: Mailbox | None = None
        self._mirror_task: asyncio.Task[None] | None = None
        self._heartbeat = Heartbeat(client, lambda: False, self.keys)

    @property
    def guard(self) -> EpochGuard:
        """The writers' connection guard (hand it to the stream)."""
        return self.elector.guard

    def _leader_live(self) -> bool:
        return self.elector.lease.leader_live(time.monotonic())

    def attach(self, service: MarketDataService) -> None:
        """Second step of construction: the service's parts exist now."""
        self._service = service
        registry = service.subscriptions
        registry.forwarder = self.forwarder  # a standby until elected
        self._desk = RequestDesk(
            self._client, self._apply, registry.sources, self.elector.is_leader
        )
        client = self._client
        self._mailbox = Mailbox(
            client.params
            if not isinstance(client, ClusterRedisClient)
            else [client.cluster.node(*node) for node in client.cluster.nodes],
            {
                self.keys.status_channel: self._on_status,
                self.keys.leader_requests_channel: self._desk.on_request,
                self.forwarder.reply_channel: self.forwarder.on_reply,
            },
        )

    def view(self) -> LeadershipView:
        lease = self.elector.lease
        now = time.monotonic()
        remaining = lease.remaining(now)
        holder = lease.holder
        return LeadershipView(
            role=lease.role.value,
            instance_id=self.instance_id,
            leader_id=None if holder is None else holder.instance,
            epoch=lease.epoch if lease.role is Role.LEADER or holder is None else holder.epoch,
            lease_remaining_seconds=None if remaining is None else round(remaining, 3),
            leader_live=lease.leader_live(now),
            last_error=lease.last_error,
        )

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        assert self._mailbox is not None, "attach() first"
        self._mailbox.start()
        # The mailbox first, so a release announced from now on is heard.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.0):
                await self._mailbox.ready.wait()
        self._mirror_task = asyncio.create_task(self._mirror(), name="standby-mirror")
        self.elector.start()

    async def stop(self) -> None:
        """A leader stops streaming, flushes, then releases the lease (and says so)."""
        await cancel_and_wait(self._mirror_task)
        await self.elector.stop({"reason": "shutdown"})
        if self._desk is not None:
            await self._desk.stop()
        if self._mailbox is not None:
            await self._mailbox.stop()

    # -- role changes -------------------------------------------------------------------

    async def _elected(self, change: Change) -> None:
        service = self._service
        assert service is not None and change.epoch is not None
        registry = service.subscriptions
        registry.forwarder = None
        if self.elector.found_redis_empty:
            # Redis lost its data, the saved set with it: keep ours, and save it again.
            await registry.reconcile()
        else:
            # The set as the group saved it: the stream resubscribes all of it.
            await registry.refresh()
        stream = service.stream
        stream.begin_epoch(str(change.epoch))
        await stream.open_sink()
        last = await self._heartbeat.last()
        previous = change.previous
        stream.sink.publish_status(
            "leader.changed",
            {
                "old_epoch": None if previous is None else previous.epoch,
                "new_epoch": change.epoch,
                "old_instance": None if previous is None else previous.instance,
                "new_instance": self.instance_id,
                "gap_seconds": None if last is None else round(max(0.0, time.time() - last), 3),
            },
        )
        await service.start_duties()

    async def _demoted(self, change: Change) -> None:
        service = self._service
        assert service is not None
        await service.stop_duties()
        service.subscriptions.forwarder = self.forwarder
        await self._refresh(service)

    # -- messages -----------------------------------------------------------------------

    def _on_status(self, payload: bytes) -> None:
        if self.elector.role is Role.STANDBY and is_release_notice(payload):
            self.elector.release_seen()

    async def _apply(self, op: str, symbols: list[str], source: str) -> list[str]:
        service = self._service
        assert service is not None
        registry = service.subscriptions
        if op == "add":
            return await registry.add(symbols, SubscriptionSource(source))
        return await registry.remove(symbols, SubscriptionSource(source))

    async def _mirror(self) -> None:
        """A standby keeps its view of the subscriptions equal to the saved set."""
        while True:
            await asyncio.sleep(_MIRROR_INTERVAL)
            service = self._service
            if service is not None and self.elector.role is Role.STANDBY:
                await self._refresh(service)

    async def _refresh(self, service: MarketDataService) -> None:
        """Mirror the saved set, unless Redis lost its data (no epoch stamp): then an
        empty set means nothing, and what this instance holds is kept."""
        try:
            if await self._client.exists(self.keys.epoch_key):
                await service.subscriptions.refresh()
        except RedisClientError as exc:
            logger.debug("saved subscriptions not mirrored: %s", exc)
        except Exception:  # a stream refusing a local change: log, keep going
            logger.exception("could not mirror the saved subscriptions")
