"""One primary's share of the writes on a Redis Cluster: the price sink, plus redirects.

``ShardSink`` is :class:`RedisPriceSink` on one primary's pipelined connection: the same
cache-then-event rule, the same newest-per-symbol book while that primary is down,
refusing or hung. What it adds is the answer a cluster gives when a slot has moved:
a ``SET`` refused with ``-MOVED`` or ``-ASK`` is not retried here (it would be refused
forever) but handed to ``on_redirect``, and the cluster sink sends it to the slot's
new owner (docs/cluster.md, "Resharding").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Final

from libs.market_data import defaults
from libs.market_data.keys import KeySpace
from libs.market_data.pipeline.condition import Episode
from libs.market_data.pipeline.packing import Batch
from libs.market_data.pipeline.processor import PriceUpdate
from libs.market_data.pipeline.sink import RedisPriceSink
from libs.redis_client import RedisConnectionParams
from libs.redis_client.writer import ConnectionGuard
from libs.telemetry import Histogram

__all__ = ["ShardSink", "is_redirect"]

_REDIRECTS: Final = ("MOVED ", "ASK ")


def is_redirect(error: str) -> bool:
    """Whether a refusal means "this slot is served elsewhere" (``-MOVED``, ``-ASK``)."""
    return error.startswith(_REDIRECTS)


class ShardSink(RedisPriceSink):
    """The price sink of one primary; redirected writes go back to the cluster sink."""

    def __init__(
        self,
        address: tuple[str, int],
        params: RedisConnectionParams,
        ttl: int,
        *,
        keys: KeySpace,
        on_redirect: Callable[[list[PriceUpdate], str], None],
        round_trips: Histogram,
        write_timeout: float = defaults.REDIS_WRITE_TIMEOUT,
        max_in_flight: int = 32,
        guard: ConnectionGuard | None = None,
    ) -> None:
        super().__init__(
            params,
            ttl,
            max_in_flight=max_in_flight,
            write_timeout=write_timeout,
            keys=keys,
            guard=guard,
        )
        self.address = address
        self._on_redirect = on_redirect
        self.quotes_redirected = 0
        # One histogram for every primary: /metrics shows the cluster's round trips.
        self._writer.round_trip_seconds = round_trips

    def __repr__(self) -> str:
        return f"ShardSink({self.address[0]}:{self.address[1]}, {self.state.value})"

    def take_pending(self) -> list[PriceUpdate]:
        """Everything held for this primary (its slots moved away); nothing is left."""
        return self._book.take_pending()

    def open_episode(self) -> Episode | None:
        """The fault this primary is in, if any: the cluster sink closes it for a primary
        replaced before it came back (docs/cluster.md, "A primary goes away")."""
        return self._condition.episode

    def _on_reply(self, batch: Batch, refused: Sequence[tuple[int, str]]) -> None:
        if batch.kind != Batch.SET or not any(is_redirect(text) for _, text in refused):
            super()._on_reply(batch, refused)
            return
        # Positions index the batch's SETs (``written``, the newest update per topic).
        written = batch.written
        redirected = [written[index] for index, text in refused if is_redirect(text)]
        moved = {update[0] for update in redirected}
        self.quotes_redirected += len(redirected)
        # The rest keeps the sink's own rules, as a batch without the moved topics: its
        # events are packed again, since the batch's events include the moved ones.
        kept = [u for u in batch.updates if u[0] not in moved]
        if kept:
            keep = [i for i, u in enumerate(written) if u[0] not in moved]
            renumber = {old: new for new, old in enumerate(keep)}
            others = [(renumber[i], text) for i, text in refused if not is_redirect(text)]
            events = b"" if others else self._frames.events(kept)
            super()._on_reply(Batch(Batch.SET, kept, events, [written[i] for i in keep]), others)
        self._on_redirect(redirected, next(text for _, text in refused if is_redirect(text)))
