"""How fresh the cached prices are, in ``/health``: the cache probe and the quote ages.

Both are bounded whatever the symbol count: counts and the stalest few, never a
series per symbol of the wildcard (docs/architecture.md, "The whole market").
"""

from __future__ import annotations

from pydantic import BaseModel, Field

__all__ = ["CacheHealth", "QuoteAges"]


class CacheHealth(BaseModel):
    """The price cache seen from Redis: reachable, how fast, how fresh per subscription."""

    redis_reachable: bool = Field(description="Redis answered the probe's PING.")
    redis_ping_ms: float | None = Field(
        default=None, description="PING round trip in milliseconds.", examples=[0.21]
    )
    fresh_symbols: int = Field(
        default=0,
        description="Subscribed symbols cached with an exchange time within stale_after_seconds.",
        examples=[3],
    )
    stale_symbols: int = Field(
        default=0, description="Subscribed symbols cached, but older.", examples=[0]
    )
    missing_symbols: int = Field(
        default=0,
        description="Subscribed symbols with no cached price (TTL ran out, or never quoted).",
        examples=[0],
    )
    oldest_age_seconds: float | None = Field(
        default=None,
        description="Age of the oldest cached subscribed price, from its exchange time.",
        examples=[1.25],
    )
    stale_after_seconds: float = Field(
        description="The age past which a cached price counts as stale (PRICE_CACHE_TTL).",
        examples=[300],
    )
    error: str | None = Field(
        default=None, description="Why Redis could not be probed, if it could not."
    )


class QuoteAges(BaseModel):
    """Per-symbol quote state summed up: bounded whatever the symbol count (the wildcard)."""

    symbols_tracked: int = Field(
        description="Symbols with an accepted quote kept (named and the wildcard's).",
        examples=[3],
    )
    symbols_named: int = Field(description="Symbols subscribed by name.", examples=[3])
    wildcard: bool = Field(description="`*` (the whole stock market) is subscribed.")
    listed: bool = Field(
        description=(
            "`last_update_age_seconds` lists every named symbol; false when there are more "
            "than 1,000: then it holds the quiet ones and the stalest few only."
        )
    )
    stalest: dict[str, float] = Field(
        default={},
        description="The stalest symbols of all tracked (wildcard included), oldest first.",
        examples=[{"ZVZZT": 42.1}],
    )
