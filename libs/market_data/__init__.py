"""Real-time market data: Alpaca quotes, validated with exact decimals, cached in Redis.

Public API::

    from libs.market_data import AlpacaMarketDataStream, QuoteData, PriceData, PriceUpdateEvent
"""

from libs.market_data import exceptions
from libs.market_data.alpaca_stream import AlpacaMarketDataStream, feed_url
from libs.market_data.backoff import BackoffPolicy
from libs.market_data.broker import AlpacaRestClient, Position, PositionSide, PreviousClose
from libs.market_data.consumers import (
    LivePrice,
    PriceSubscriber,
    SubscriberError,
    SubscriberUpdate,
    SyncPriceSubscriber,
)
from libs.market_data.exceptions import *  # noqa: F403 (the whole tree, listed in its __all__)
from libs.market_data.keys import PRICE_CHANNEL_PREFIX, PRICE_KEY_PREFIX
from libs.market_data.pnl import PnLReport, PositionPnL, PriceSource, compute_pnl
from libs.market_data.stream.connection import ConnectionState
from libs.market_data.subscriptions.positions import PositionBasedSubscription
from libs.market_data.symbols import normalize_symbol, normalize_symbols
from libs.market_data.types import (
    PriceData,
    PriceUpdateEvent,
    QuoteData,
    RejectReason,
    check_quote,
)

__all__ = [
    "PRICE_CHANNEL_PREFIX",
    "PRICE_KEY_PREFIX",
    "AlpacaMarketDataStream",
    "AlpacaRestClient",
    "BackoffPolicy",
    "ConnectionState",
    "LivePrice",
    "PnLReport",
    "Position",
    "PositionBasedSubscription",
    "PositionPnL",
    "PositionSide",
    "PreviousClose",
    "PriceData",
    "PriceSource",
    "PriceSubscriber",
    "PriceUpdateEvent",
    "QuoteData",
    "RejectReason",
    "SubscriberError",
    "SubscriberUpdate",
    "SyncPriceSubscriber",
    "check_quote",
    "compute_pnl",
    "feed_url",
    "normalize_symbol",
    "normalize_symbols",
]
__all__ += exceptions.__all__
