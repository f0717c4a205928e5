"""Prometheus metrics, read from the counters the service keeps anyway, at scrape time.

The hot path never touches prometheus_client: it bumps plain integers and two
:class:`~libs.telemetry.Histogram` objects (per frame at most), and
:class:`MarketDataCollector` turns them into metric families when Prometheus asks.
Each app gets its own :class:`~prometheus_client.CollectorRegistry`, so several
services in one process (tests) never collide in the global one.

Label values are bounded: ``state`` and ``reason`` are enums, ``cause`` a fixed set of
names, ``symbol`` only the symbols subscribed by name: the wildcard's (``*``, 10,000+
symbols) get no series of their own (docs/architecture.md, "The whole market"). The
plain counters and gauges are rows of ``metric_tables.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from apps.market_data_service.observability.metric_tables import COUNTERS, GAUGES
from libs.market_data import AlpacaMarketDataStream, ConnectionState, RejectReason
from libs.market_data.cache.price_cache import PriceCache
from libs.market_data.gapfill import SkipReason
from libs.market_data.stats import StreamStats
from libs.telemetry import Histogram

__all__ = ["COUNTERS", "GAUGES", "PREFIX", "MarketDataCollector", "build_registry", "render"]

PREFIX: Final = "market_data_"


class MarketDataCollector(Collector):
    """Metric families from a stream's counters and a price cache's hit/miss counts."""

    def __init__(self, stream: AlpacaMarketDataStream, prices: PriceCache) -> None:
        self._stream = stream
        self._prices = prices

    def collect(self) -> Iterator[Metric]:
        stream = self._stream
        stats = stream.stats()
        for source, name, doc in COUNTERS:
            yield CounterMetricFamily(PREFIX + name, doc, value=source(stats))
        for source, name, doc in GAUGES:
            yield GaugeMetricFamily(PREFIX + name, doc, value=source(stats))

        rejected = CounterMetricFamily(
            PREFIX + "quotes_rejected",
            "Quotes dropped by validation, by reason.",
            labels=["reason"],
        )
        counts = stats.processor.quotes_rejected
        for reason in RejectReason:  # every reason, zero included: a stable series set
            rejected.add_metric([reason.value], counts.get(reason.value, 0))
        yield rejected

        reconnects = CounterMetricFamily(
            PREFIX + "reconnects",
            "Reconnects to the broker, by cause (closed, stall, timeout, alpaca_<code>, ...).",
            labels=["cause"],
        )
        for cause, count in sorted(stats.connection.reconnect_causes.items()):
            reconnects.add_metric([cause], count)
        yield reconnects

        state = GaugeMetricFamily(
            PREFIX + "connection_state",
            "The broker connection's state: 1 for the current one, 0 for the others.",
            labels=["state"],
        )
        current = stats.connection.state
        for each in ConnectionState:
            state.add_metric([each.value], 1.0 if each is current else 0.0)
        yield state

        yield GaugeMetricFamily(
            PREFIX + "redis_connected",
            "1 while the Redis writer is connected.",
            value=1.0 if stats.sink.redis_connected else 0.0,
        )
        last_rtt = stats.sink.last_round_trip_ms
        if last_rtt is not None:
            yield GaugeMetricFamily(
                PREFIX + "redis_last_round_trip_seconds",
                "Round-trip time of the last acknowledged Redis write batch.",
                value=last_rtt / 1000,
            )

        yield from self._ages(stats)
        yield from _gap_fill(stream)

        yield CounterMetricFamily(
            PREFIX + "cache_hits",
            "Price reads by the service (price and P&L endpoints) that found a cached price.",
            value=self._prices.hits,
        )
        yield CounterMetricFamily(
            PREFIX + "cache_misses",
            "Price reads by the service that found no cached price (never quoted, or expired).",
            value=self._prices.misses,
        )

        histograms = stream.histograms()
        yield _histogram(
            PREFIX + "cache_write_latency_seconds",
            "Exchange timestamp to the cache write; a frame's last quote, at most once a ms.",
            histograms["cache_write_latency"],
        )
        yield _histogram(
            PREFIX + "redis_write_round_trip_seconds",
            "Send to last reply of one pipelined Redis write batch (one frame's quotes).",
            histograms["redis_round_trip"],
        )

    def _ages(self, stats: StreamStats) -> Iterator[Metric]:
        ages = self._stream.last_update_ages()
        per_symbol = GaugeMetricFamily(
            PREFIX + "last_update_age_seconds",
            "Seconds since each subscribed symbol's last accepted quote (absent: none yet).",
            labels=["symbol"],
        )
        waiting = 0
        for symbol, age in ages.items():
            if age is None:
                waiting += 1
            else:
                per_symbol.add_metric([symbol], age)
        yield per_symbol
        yield GaugeMetricFamily(
            PREFIX + "symbols_without_quotes",
            "Subscribed symbols that have had no accepted quote yet.",
            value=waiting,
        )
        yield GaugeMetricFamily(
            PREFIX + "symbols_tracked",
            "Symbols with quote state kept: the named ones and the wildcard's, one number.",
            value=self._stream.age_summary(limit=0)[0],
        )
        last_data = stats.connection.last_data_at
        if last_data is not None:
            yield GaugeMetricFamily(
                PREFIX + "last_data_timestamp_seconds",
                "Unix time of the last market data received on any symbol.",
                value=last_data,
            )


def _gap_fill(stream: AlpacaMarketDataStream) -> Iterator[Metric]:
    """The gap fill's counters (docs/architecture.md, "Gap fill"); none when it is off."""
    if stream.gap_fill is None:
        return
    status = stream.gap_fill.status()
    fills = CounterMetricFamily(
        PREFIX + "gap_fills",
        "Gap fills from REST latest quotes, by result (filled, partial, skipped).",
        labels=["result"],
    )
    fills.add_metric(["filled"], status.fills - status.partial)
    fills.add_metric(["partial"], status.partial)
    fills.add_metric(["skipped"], status.skipped)
    yield fills
    skipped = CounterMetricFamily(
        PREFIX + "gap_fills_skipped",
        "Gap fills that read nothing, by reason (rest_unavailable, rate_budget, ...).",
        labels=["reason"],
    )
    for reason in SkipReason:  # every reason, zero included: a stable series set
        skipped.add_metric([reason.value], status.skipped_by_reason.get(reason.value, 0))
    yield skipped
    yield CounterMetricFamily(
        PREFIX + "gap_fill_symbols_refreshed",
        "Prices the gap fill wrote (REST quotes newer than the cached ones).",
        value=status.symbols_refreshed,
    )
    yield CounterMetricFamily(
        PREFIX + "gap_fill_rest_calls",
        "REST requests the gap fill made (GET /v2/stocks/quotes/latest).",
        value=status.rest_calls,
    )


def _histogram(name: str, doc: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets = [(_le(bound), count) for bound, count in histogram.cumulative()]
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=histogram.sum)


def _le(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def build_registry(stream: AlpacaMarketDataStream, prices: PriceCache) -> CollectorRegistry:
    """A registry of its own: the service's metrics plus process and Python info."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MarketDataCollector(stream, prices))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The exposition (Prometheus text, or OpenMetrics if asked for) and its content type."""
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type
