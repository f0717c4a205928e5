"""Request and response bodies of the HTTP API (field names are the spec's), by endpoint.

Every field carries a description (and an example where one helps): they are the
reference at ``/docs``. Decimals travel as JSON strings holding the exact decimal
(:data:`DecimalString`); error bodies are :mod:`~apps.market_data_service.api.errors`'s.
"""

from apps.market_data_service.api.schemas.common import (
    DECIMAL_PATTERN,
    MAX_SYMBOLS_PER_REQUEST,
    SYMBOL_PATTERN,
    DecimalString,
    SymbolPath,
)
from apps.market_data_service.api.schemas.health import (
    CacheHealth,
    GapFillHealth,
    HealthResponse,
    HealthStats,
    LiveResponse,
    PositionSyncHealth,
    ReadyResponse,
)
from apps.market_data_service.api.schemas.pnl import (
    PositionPnLItem,
    RealtimePnLResponse,
    RealtimePnLTotals,
)
from apps.market_data_service.api.schemas.prices import PriceResponse, PricesResponse
from apps.market_data_service.api.schemas.subscriptions import (
    SubscribeRequest,
    SubscribeResponse,
    SubscriptionsResponse,
    UnsubscribeResponse,
)

__all__ = [
    "DECIMAL_PATTERN",
    "MAX_SYMBOLS_PER_REQUEST",
    "SYMBOL_PATTERN",
    "CacheHealth",
    "DecimalString",
    "GapFillHealth",
    "HealthResponse",
    "HealthStats",
    "LiveResponse",
    "PositionPnLItem",
    "PositionSyncHealth",
    "PriceResponse",
    "PricesResponse",
    "ReadyResponse",
    "RealtimePnLResponse",
    "RealtimePnLTotals",
    "SubscribeRequest",
    "SubscribeResponse",
    "SubscriptionsResponse",
    "SymbolPath",
    "UnsubscribeResponse",
]
