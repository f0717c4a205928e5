"""The broker's REST side: open positions, previous closes and latest quotes from Alpaca,
exact decimals.

- :mod:`~libs.market_data.broker.models`: the records (positions, previous closes);
- :mod:`~libs.market_data.broker.wire`: decoding Alpaca's answers into them;
- :mod:`~libs.market_data.broker.crypto`: crypto positions named as their pairs;
- :mod:`~libs.market_data.broker.client`: :class:`AlpacaRestClient`, HTTP and retries;
- :mod:`~libs.market_data.broker.caches`: reads kept a short while to spare rate limits.

docs/positions.md describes the calls, the retries and the errors.
"""

from libs.market_data.broker.caches import PreviousCloseCache, RecentPositions
from libs.market_data.broker.client import (
    ALPACA_DATA_HOST,
    ALPACA_PAPER_HOST,
    LATEST_QUOTES_BATCH,
    REST_FEEDS,
    AlpacaRestClient,
)
from libs.market_data.broker.crypto import QUOTE_CURRENCIES, crypto_pair, position_symbol
from libs.market_data.broker.models import (
    LatestQuote,
    LatestQuotesReader,
    Position,
    PositionSide,
    PositionsReader,
    PreviousClose,
    PreviousClosesReader,
)
from libs.market_data.broker.wire import (
    decode_latest_quotes,
    decode_positions,
    decode_previous_closes,
)

__all__ = [
    "ALPACA_DATA_HOST",
    "ALPACA_PAPER_HOST",
    "LATEST_QUOTES_BATCH",
    "QUOTE_CURRENCIES",
    "REST_FEEDS",
    "AlpacaRestClient",
    "LatestQuote",
    "LatestQuotesReader",
    "Position",
    "PositionSide",
    "PositionsReader",
    "PreviousClose",
    "PreviousCloseCache",
    "PreviousClosesReader",
    "RecentPositions",
    "crypto_pair",
    "decode_latest_quotes",
    "decode_positions",
    "decode_previous_closes",
    "position_symbol",
]
