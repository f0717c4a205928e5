"""The cache half of ``/health``: is Redis there, how fast, how fresh are the prices.

One PING and one MGET of the subscribed symbols' ``price:{SYM}`` keys per call,
bounded in time so a hung Redis makes ``/health`` say so instead of hanging too. The
MGET goes to :class:`~libs.redis_client.RedisClient` directly: a health probe is not a
price read, and must not move the cache hit/miss counters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Final

import msgspec

from apps.market_data_service.api.schemas import CacheHealth
from libs.market_data.keys import DEFAULT_KEYS, KeySpace
from libs.redis_client import RedisClient, RedisClientError
from libs.telemetry import epoch_seconds

__all__ = ["PROBE_TIMEOUT", "probe_cache"]

# Short: /health answers within its own budget even when Redis hangs.
PROBE_TIMEOUT: Final = 0.5


class _Stamped(msgspec.Struct):
    timestamp: str  # the rest of the PriceData JSON is skipped by the decoder


_decode_stamped = msgspec.json.Decoder(_Stamped).decode


async def probe_cache(
    client: RedisClient,
    symbols: Sequence[str],
    stale_after: float,
    *,
    timeout: float = PROBE_TIMEOUT,
    keys: KeySpace = DEFAULT_KEYS,
) -> CacheHealth:
    """Ping Redis and sort ``symbols`` into fresh, stale and missing cache entries."""
    try:
        async with asyncio.timeout(timeout):
            ping = await client.ping()
            raws = await client.mget([keys.price_key(s) for s in symbols])
    except TimeoutError:
        return CacheHealth(
            redis_reachable=False,
            stale_after_seconds=stale_after,
            error=f"Redis did not answer within {timeout:g}s",
        )
    except RedisClientError as exc:
        return CacheHealth(redis_reachable=False, stale_after_seconds=stale_after, error=str(exc))
    now = time.time()
    fresh = stale = missing = 0
    oldest: float | None = None
    for raw in raws:
        age = _age(raw, now)
        if age is None:
            missing += 1
            continue
        oldest = age if oldest is None else max(oldest, age)
        if age > stale_after:
            stale += 1
        else:
            fresh += 1
    return CacheHealth(
        redis_reachable=True,
        redis_ping_ms=round(ping * 1000, 3),
        fresh_symbols=fresh,
        stale_symbols=stale,
        missing_symbols=missing,
        oldest_age_seconds=None if oldest is None else round(oldest, 3),
        stale_after_seconds=stale_after,
    )


def _age(raw: bytes | None, now: float) -> float | None:
    """Seconds since the entry's exchange time; None when absent or unreadable."""
    if raw is None:
        return None
    try:
        return max(0.0, now - epoch_seconds(_decode_stamped(raw).timestamp))
    except (msgspec.DecodeError, ValueError):
        return None  # an unreadable entry serves no reader: as good as missing
