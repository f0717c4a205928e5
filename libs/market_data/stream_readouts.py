"""What ``AlpacaMarketDataStream`` reports: state, counters and histograms of its stages.

Reads only, assembled from the stages the façade wires (the stock and crypto
connections, the processors, the sink) into the typed
:class:`~libs.market_data.stats.StreamStats` that ``/health`` and ``/metrics`` read,
and the spec's dict (``get_connection_stats``). A base class of the façade, so these
stay its own public methods; it holds no state.
"""

from __future__ import annotations

from typing import Any

from libs.market_data.pipeline.events import EventProcessor
from libs.market_data.pipeline.processor import QuoteProcessor
from libs.market_data.pipeline.sinks import PriceSink
from libs.market_data.stats import StreamStats
from libs.market_data.stream.connection import AlpacaConnection, ConnectionState
from libs.market_data.stream.feeds import Feeds
from libs.market_data.stream.records import ConnectionStats
from libs.telemetry import Histogram

__all__ = ["StreamReadouts"]


class StreamReadouts:
    """The façade's read-outs, over its stages."""

    # Set by the façade's constructor.
    _connection: AlpacaConnection
    _feeds: Feeds
    _processor: QuoteProcessor
    _events: EventProcessor
    _sink: PriceSink
    cache_write_latency: Histogram

    def is_connected(self) -> bool:
        """True while authenticated and streaming."""
        return self._connection.is_connected()

    @property
    def state(self) -> ConnectionState:
        return self._connection.state

    @property
    def connection(self) -> AlpacaConnection:
        return self._connection

    @property
    def sink(self) -> PriceSink:
        return self._sink

    @property
    def crypto_connection(self) -> AlpacaConnection:
        return self._feeds.crypto

    def connection_stats(self) -> ConnectionStats:
        """The broker connection's counters, as a typed record."""
        return self._connection.stats()

    def stats(self) -> StreamStats:
        """Counters and state of every stage, typed (``/health``, ``/metrics``)."""
        return StreamStats(
            connection=self._connection.stats(),
            processor=self._processor.snapshot(),
            sink=self._sink.snapshot(),
            events=self._events.snapshot(),
            crypto=self._feeds.crypto_stats(),
        )

    def get_connection_stats(self) -> dict[str, Any]:
        """Counters and state, for ``/health`` and operators (the spec's dict)."""
        return self.stats().as_dict()

    def histograms(self) -> dict[str, Histogram]:
        """The stream's histograms, for an exporter to read at scrape time."""
        return {
            "cache_write_latency": self.cache_write_latency,
            # The sink keeps its writer private; the histogram is read, never changed.
            "redis_round_trip": self._sink.round_trip_seconds,
        }
