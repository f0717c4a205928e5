"""The effective configuration in one line, for the startup log (``Settings.summary``)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from apps.market_data_service.config import Settings

__all__ = ["summary_line"]


def summary_line(settings: Settings) -> str:
    """``key=value ...`` without a secret or a credential.

    The stream's scheme, host and port only (a path or query may carry a token), the
    Redis address without user or password, and whether the API key is set.
    """
    stream = urlsplit(settings.stream_url)
    host = stream.hostname or "?"
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{stream.port}" if stream.port else ""
    except ValueError:  # not a number: the connection will say so, not this line
        port = ""
    redis = settings.redis_params()
    if redis.unix_socket_path is not None:
        where = f"unix:{redis.unix_socket_path}?db={redis.db}"
    else:
        redis_host = f"[{redis.host}]" if ":" in redis.host else redis.host
        where = f"{redis_host}:{redis.port}/{redis.db}"
    items = {
        "feed": settings.alpaca_data_feed,
        "stream": f"{stream.scheme}://{host}{port}",
        "redis": where
        if settings.redis_cluster_nodes is None
        else f"cluster:{settings.redis_cluster_nodes}",
        "redis_tls": _on(redis.ssl),
        "namespace": settings.redis_namespace or "(none)",
        "price_cache_ttl": f"{settings.price_cache_ttl}s",
        "api_key": _on(settings.market_data_api_key is not None),
        "position_sync": _on(settings.position_sync_on),
    }
    if settings.leader_election != "off":
        items["leader_election"] = settings.leader_election
        items["lease_ttl"] = f"{settings.leader_lease_ttl:g}s"
        items["instance"] = settings.instance_id
    return " ".join(f"{key}={value}" for key, value in items.items())


def _on(flag: bool) -> str:
    return "on" if flag else "off"
