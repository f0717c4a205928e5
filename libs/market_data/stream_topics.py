"""The topics of ``AlpacaMarketDataStream``: subscribing, listing, and their quote ages.

A topic is a ticker or crypto pair for its quotes, ``trades:AAPL``, ``bars:AAPL``, or
``*`` for the whole market (:mod:`libs.market_data.topics`). The feeds route each to the
stock or the crypto connection (:mod:`libs.market_data.stream.feeds`); what a change
sets off beyond the broker lives here: a gap fill for new quote symbols, and for dropped
ones the processors' and the sink's state forgotten (docs/architecture.md, "Feeds and
topics", "Gap fill"). A base class of the façade, so its public methods stay the
façade's own; it reads the façade's stages and holds no state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Set
from typing import Final

from libs.market_data.gapfill import FillTrigger, GapFiller, fill_symbols
from libs.market_data.pipeline.events import EventProcessor
from libs.market_data.pipeline.processor import QuoteProcessor
from libs.market_data.pipeline.sinks import PriceSink
from libs.market_data.stream.feeds import Feeds
from libs.market_data.symbols import WILDCARD
from libs.market_data.topics import Channel, channel_topics, normalize_topics, parse_topic

__all__ = ["StreamTopics"]

# How many of the stalest symbols age_summary() names by default.
_STALEST: Final = 10


class StreamTopics:
    """Subscriptions and quote ages over the façade's feeds, processors and sink."""

    # Set by the façade's constructor.
    _feeds: Feeds
    _processor: QuoteProcessor
    _events: EventProcessor
    _sink: PriceSink
    _subscribed: Set[str]  # the stock connection's live view of its wanted topics
    gap_fill: GapFiller | None

    async def subscribe_symbols(self, symbols: Iterable[str]) -> list[str]:
        """Subscribe to topics; returns those newly added (duplicates filtered).

        A topic is a ticker or crypto pair for its quotes (``AAPL``, ``BTC/USD``),
        ``trades:AAPL`` or ``bars:AAPL`` for the other channels, ``*`` for the whole
        market (:mod:`libs.market_data.topics`). Works before :meth:`start` and while
        connected. Raises :class:`~libs.market_data.exceptions.InvalidSymbolError` for a
        bad ticker or an option symbol and
        :class:`~libs.market_data.exceptions.SubscriptionError` if the server refuses.
        """
        added = await self._feeds.subscribe(channel_topics(symbols))
        # The REST fill reads quotes by name: not the wildcard, not other channels.
        quotes = fill_symbols(added)
        if quotes and self.gap_fill is not None:
            # A quiet symbol would have no price until its next quote.
            self.gap_fill.request(FillTrigger.SUBSCRIBE, quotes)
        return added

    async def subscribe(
        self, symbols: Iterable[str], channels: Iterable[Channel | str] = (Channel.QUOTES,)
    ) -> list[str]:
        """Subscribe ``symbols`` (or ``*``) on ``channels``; returns the new topics."""
        return await self.subscribe_symbols(normalize_topics(symbols, channels))

    async def unsubscribe_symbols(self, symbols: Iterable[str]) -> list[str]:
        """Unsubscribe topics; returns those that were subscribed and now are not.

        Dropping ``*`` keeps the named symbols; the state of the others is forgotten.
        """
        removed = await self._feeds.unsubscribe(channel_topics(symbols))
        forget = [t for t in removed if t != WILDCARD]
        if WILDCARD in removed:
            named = self._subscribed
            forget += [s for s in self._processor.last_accepted if s not in named]
        self._processor.forget(forget)
        self._events.forget(forget)
        self._sink.forget(forget)
        return removed

    def get_subscribed_topics(self) -> list[str]:
        """Every topic wanted on either feed, sorted."""
        return self._feeds.topics()

    def get_subscribed_symbols(self) -> list[str]:
        """The symbols wanted on any channel (``*`` for the whole market), sorted."""
        return sorted({parse_topic(t)[1] for t in self._feeds.topics()})

    def named_quote_symbols(self) -> list[str]:
        """The symbols whose quotes are wanted by name (not through ``*``), sorted."""
        return [t for t in self._feeds.topics() if t != WILDCARD and ":" not in t]

    @property
    def wildcard(self) -> bool:
        """The whole market's quotes are wanted."""
        return WILDCARD in self._subscribed

    def last_update_ages(self, now: float | None = None) -> dict[str, float | None]:
        """Seconds since each named symbol's last accepted quote (None: none yet).

        The wildcard's symbols are not listed (:meth:`age_summary` sums them up), so a
        reader of this stays bounded by what was asked for by name.
        """
        current = time.time() if now is None else now
        return self._processor.ages(self.named_quote_symbols(), current)

    def age_summary(
        self, now: float | None = None, limit: int = _STALEST
    ) -> tuple[int, list[tuple[str, float]]]:
        """Symbols with quote state (the wildcard's included), and the ``limit`` stalest."""
        current = time.time() if now is None else now
        return self._processor.tracked, self._processor.stalest(current, limit)
