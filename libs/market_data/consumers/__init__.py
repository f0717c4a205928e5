"""Reading the service's prices from Redis: :class:`PriceSubscriber` and its sync wrapper."""

from libs.market_data.consumers.records import LivePrice, SubscriberUpdate, UpdateKind
from libs.market_data.consumers.subscriber import DEFAULT_SUBSCRIBER_BACKOFF, PriceSubscriber
from libs.market_data.consumers.sync import SyncPriceSubscriber
from libs.market_data.exceptions import SubscriberError

__all__ = [
    "DEFAULT_SUBSCRIBER_BACKOFF",
    "LivePrice",
    "PriceSubscriber",
    "SubscriberError",
    "SubscriberUpdate",
    "SyncPriceSubscriber",
    "UpdateKind",
]
