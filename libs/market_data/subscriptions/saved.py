"""The saved form of the wanted subscriptions: the Redis hash ``market_data:subscriptions``.

One field per topic, its value the comma-separated names of the sources that hold it
(``manual``, ``positions``). Reading it back skips what is not a topic or names no known
source, so a hand-edited or older hash never stops a start (docs/architecture.md,
"Redis faults").
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Final

from libs.market_data.topics import channel_topics

__all__ = ["SubscriptionSource", "encode_saved", "parse_saved"]

# The registry's logger: these lines are about the saved set it keeps.
logger = logging.getLogger("libs.market_data.subscriptions.registry")


class SubscriptionSource(StrEnum):
    MANUAL = "manual"
    POSITIONS = "positions"


_SOURCE_VALUES: Final = frozenset(s.value for s in SubscriptionSource)


def encode_saved(sources: Mapping[str, Iterable[SubscriptionSource]]) -> dict[str, str]:
    """Symbol -> its sources as the hash holds them (sorted, comma-separated)."""
    return {symbol: ",".join(sorted(held)) for symbol, held in sources.items()}


def parse_saved(stored: Mapping[str, str]) -> dict[str, set[SubscriptionSource]]:
    """The saved hash (symbol -> comma-separated sources) as sets; bad entries skipped."""
    parsed: dict[str, set[SubscriptionSource]] = {}
    for symbol, text in stored.items():
        sources = {SubscriptionSource(v) for v in text.split(",") if v in _SOURCE_VALUES}
        try:
            (valid,) = channel_topics([symbol])
        except ValueError:
            logger.warning("ignoring stored subscription %r: not a topic", symbol)
            continue
        if sources:
            parsed[valid] = sources
    return parsed
