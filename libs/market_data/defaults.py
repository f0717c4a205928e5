"""The defaults of every tunable, in one place.

The library's signatures and the service's ``Settings`` both take their defaults from
here, so a default is changed once and the README's settings table states these values.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "MAX_RECONNECT_ATTEMPTS",
    "POSITION_SYNC_INTERVAL",
    "PRICE_CACHE_TTL",
    "RECONNECT_BASE_DELAY",
    "RECONNECT_MAX_DELAY",
    "REDIS_WRITE_TIMEOUT",
    "REST_TIMEOUT",
    "STALL_TIMEOUT",
    "STEP_TIMEOUT",
    "SUBSCRIPTION_CHECK_INTERVAL",
]

PRICE_CACHE_TTL: Final = 300  # seconds a cached price lives (the spec's default)
MAX_RECONNECT_ATTEMPTS: Final = 10  # consecutive failures before the stream gives up
RECONNECT_BASE_DELAY: Final = 5.0  # seconds; doubles per failure
RECONNECT_MAX_DELAY: Final = 300.0  # seconds; the cap
STEP_TIMEOUT: Final = 10.0  # seconds per handshake step (greeting, auth, ack)
STALL_TIMEOUT: Final = 120.0  # seconds without any market data before a reconnect
REDIS_WRITE_TIMEOUT: Final = 1.0  # seconds the broker reader may wait on Redis
SUBSCRIPTION_CHECK_INTERVAL: Final = 5.0  # seconds between checks of the saved set
POSITION_SYNC_INTERVAL: Final = 30.0  # seconds between position reads
REST_TIMEOUT: Final = 10.0  # seconds per broker REST request
