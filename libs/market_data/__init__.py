"""Real-time market data: Alpaca quotes, validated with exact decimals, cached in Redis.

Public API::

    from libs.market_data import AlpacaMarketDataStream, QuoteData, PriceData, PriceUpdateEvent
"""

from libs.market_data.alpaca_stream import AlpacaMarketDataStream, feed_url
from libs.market_data.backoff import BackoffPolicy
from libs.market_data.broker.rest import AlpacaRestClient, Position, PositionSide, PreviousClose
from libs.market_data.exceptions import (
    AlpacaError,
    AuthenticationError,
    BrokerAPIError,
    BrokerAuthError,
    BrokerRateLimitError,
    BrokerResponseError,
    BrokerUnavailableError,
    ConnectionLimitError,
    HandshakeError,
    InvalidSymbolError,
    MarketDataError,
    ProtocolError,
    QuoteHandlingError,
    QuoteValidationError,
    SlowClientError,
    StreamConnectionError,
    SubscriptionError,
)
from libs.market_data.keys import PRICE_CHANNEL_PREFIX, PRICE_KEY_PREFIX
from libs.market_data.pnl.compute import PnLReport, PositionPnL, PriceSource, compute_pnl
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
    "AlpacaError",
    "AlpacaMarketDataStream",
    "AlpacaRestClient",
    "AuthenticationError",
    "BackoffPolicy",
    "BrokerAPIError",
    "BrokerAuthError",
    "BrokerRateLimitError",
    "BrokerResponseError",
    "BrokerUnavailableError",
    "ConnectionLimitError",
    "ConnectionState",
    "HandshakeError",
    "InvalidSymbolError",
    "MarketDataError",
    "PnLReport",
    "Position",
    "PositionBasedSubscription",
    "PositionPnL",
    "PositionSide",
    "PreviousClose",
    "PriceData",
    "PriceSource",
    "PriceUpdateEvent",
    "ProtocolError",
    "QuoteData",
    "QuoteHandlingError",
    "QuoteValidationError",
    "RejectReason",
    "SlowClientError",
    "StreamConnectionError",
    "SubscriptionError",
    "check_quote",
    "compute_pnl",
    "feed_url",
    "normalize_symbol",
    "normalize_symbols",
]
