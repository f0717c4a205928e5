"""The defaults of every tunable, in one place.

The library's signatures and the service's ``Settings`` both take their defaults from
here, so a default is changed once and the README's settings table states these values.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "LEADER_ELECTION",
    "LEADER_LEASE_TTL",
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
# Leader election (docs/leadership.md). "off": one instance, as before; "redis": a lease.
LEADER_ELECTION: Final = "off"
# Seconds a leader's lease lives unrenewed. A killed leader is replaced after what was
# left of it (2/3 to all of it: renewed every third) plus connect, auth and subscribe:
# 1.5 s keeps that under 2 s; shorter would turn a busy second into a failover.
LEADER_LEASE_TTL: Final = 1.5
# Gap fill from REST latest quotes (docs/architecture.md, "Gap fill"). The REST limit
# (200 calls a minute on the free plan) is shared with order entry: a fill takes a few.
GAP_FILL_ENABLED: Final = True
GAP_FILL_TIMEOUT: Final = 5.0  # seconds one fill may take, REST retries included
GAP_FILL_MAX_CALLS: Final = 3  # REST requests per fill (100 symbols each)
GAP_FILL_CALLS_PER_MINUTE: Final = 20  # over all fills: a tenth of the free plan's limit
GAP_FILL_COOLDOWN: Final = 10.0  # seconds fills are skipped after REST failed (or Retry-After)
