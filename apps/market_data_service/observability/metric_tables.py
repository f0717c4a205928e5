"""The plain counters and gauges of ``/metrics``: one row each, read from the typed stats.

``MarketDataCollector`` (observability/metrics.py) turns each row into a metric family
at scrape time; the labelled families and histograms are made there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from libs.market_data.stats import StreamStats

__all__ = ["COUNTERS", "GAUGES", "Source"]

# (source in the typed stats, name, help). Attribute access, never string keys: a
# renamed counter fails the type check and tests/.../test_metrics.py, not silently 0.
Source = Callable[[StreamStats], float]
COUNTERS: Final[tuple[tuple[Source, str, str], ...]] = (
    (
        lambda s: s.connection.frames_received,
        "frames_received",
        "WebSocket frames received from the broker.",
    ),
    (
        lambda s: s.processor.quotes_received,
        "quotes_received",
        "Quotes decoded from the feed (accepted + rejected).",
    ),
    (
        lambda s: s.processor.quotes_accepted,
        "quotes_accepted",
        "Quotes that passed validation and were cached.",
    ),
    (
        lambda s: s.connection.malformed_messages,
        "malformed_messages",
        "Messages that could not be decoded at all and were dropped.",
    ),
    (
        lambda s: s.connection.other_messages,
        "other_messages",
        "Market data of types this service does not process.",
    ),
    (lambda s: s.connection.error_frames, "error_frames", "Error frames the broker sent."),
    (
        lambda s: s.connection.connections_opened,
        "connections_opened",
        "WebSocket connections opened to the broker.",
    ),
    (
        lambda s: s.connection.stalls_detected,
        "stalls_detected",
        "Silent feeds closed by the data clock.",
    ),
    (
        lambda s: s.sink.quotes_written,
        "events_published",
        "Price updates sent to Redis: one SET price:{SYM}, and its PUBLISH once it landed.",
    ),
    (
        lambda s: s.sink.quotes_deferred,
        "quotes_deferred",
        "Price updates held back while Redis did not take writes (newest per symbol kept).",
    ),
    (
        lambda s: s.sink.quotes_refused,
        "redis_writes_refused",
        "Price writes Redis answered with an error (OOM, READONLY...); kept and retried.",
    ),
    (
        lambda s: s.sink.redis_outages,
        "redis_outages",
        "Times Redis stopped taking writes (down, refusing or not answering).",
    ),
    (
        lambda s: s.sink.round_trips,
        "redis_round_trips",
        "Pipelined Redis write batches acknowledged.",
    ),
    (lambda s: s.sink.reply_errors, "redis_reply_errors", "Error replies from Redis to writes."),
    (lambda s: s.events.trades_accepted, "trades_accepted", "Trades validated and cached."),
    (lambda s: s.events.bars_accepted, "bars_accepted", "Minute bars validated and cached."),
    (
        lambda s: sum(s.events.trades_rejected.values()) + sum(s.events.bars_rejected.values()),
        "trades_bars_rejected",
        "Trades and bars dropped by validation (any reason).",
    ),
)
GAUGES: Final[tuple[tuple[Source, str, str], ...]] = (
    (
        lambda s: s.connection.reconnect_attempts,
        "reconnect_attempts",
        "Consecutive failed connection attempts (0 while data flows).",
    ),
    (
        lambda s: s.connection.subscribed_symbols,
        "subscribed_symbols",
        "Symbols the service wants quotes for.",
    ),
    (
        lambda s: s.connection.confirmed_symbols,
        "confirmed_symbols",
        "Symbols the broker confirmed.",
    ),
    (
        lambda s: s.sink.pending_symbols,
        "redis_pending_symbols",
        "Symbols whose newest price waits for Redis to take it.",
    ),
    (
        lambda s: s.sink.batches_in_flight,
        "redis_batches_in_flight",
        "Write batches sent, not yet answered.",
    ),
)
