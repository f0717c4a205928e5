"""The ``redis.recovered`` of a primary that was replaced before it came back.

A primary that fails opens an episode in its shard sink, which closes it with
``redis.recovered`` once its writes land again. When its replica is promoted instead,
that sink is discarded with the episode open; the cluster sink closes it for it, once
the held prices it handed over were written on the successor (docs/cluster.md,
"A primary goes away"). Pure: what the notice says, and which successor sends it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from libs.market_data.pipeline.cluster_status import Address, address_name
from libs.market_data.pipeline.condition import Episode
from libs.market_data.pipeline.processor import PriceUpdate
from libs.market_data.topics import parse_topic

__all__ = ["busiest", "recovered_details"]

S = TypeVar("S")


def recovered_details(
    address: Address, episode: Episode, rewritten: Sequence[PriceUpdate]
) -> dict[str, Any]:
    """The notice's fields: a sink's own ``redis.recovered`` ones, plus the ``shard``."""
    return {
        "cause": episode.cause.value,
        "outage_started_at": episode.started_at,
        "symbols_rewritten": sorted({parse_topic(u[0])[1] for u in rewritten}),
        "shard": address_name(address),
    }


def busiest(route: Mapping[str, S], rewritten: Sequence[PriceUpdate]) -> S | None:
    """The successor that took most of the rewrites (a failover has one): the notice
    follows its writes. None when nothing was rewritten or no owner is known."""
    owners = Counter(owner for u in rewritten if (owner := route.get(u[0])) is not None)
    return owners.most_common(1)[0][0] if owners else None
