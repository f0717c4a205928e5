"""Redis access for the market data service.

``RedisClient`` (cache reads and writes) and ``EventPublisher`` (pub/sub) are the
spec's contract; ``RedisConnectionParams`` is the one description of how to reach a
server, shared with the pipelined writer. Errors are this package's own
(``exceptions``). ``EmbeddedRedis`` and ``find_redis_server`` live in
``libs.redis_embedded`` and are still importable from here.
"""

from typing import TYPE_CHECKING

from libs.redis_client.client import RedisClient
from libs.redis_client.exceptions import (
    RedisClientError,
    RedisCommandError,
    RedisConnectionError,
)
from libs.redis_client.params import RedisConnectionParams
from libs.redis_client.publisher import EventPublisher

if TYPE_CHECKING:
    from libs.redis_embedded import EmbeddedRedis, find_redis_server

__all__ = [
    "EmbeddedRedis",
    "EventPublisher",
    "RedisClient",
    "RedisClientError",
    "RedisCommandError",
    "RedisConnectionError",
    "RedisConnectionParams",
    "find_redis_server",
]

# The embedded server is a dev/test tool that loads libc through ctypes and registers an
# atexit hook: it is imported on first use of these names, never by the service itself.
_EMBEDDED_NAMES = frozenset({"EmbeddedRedis", "find_redis_server"})

if not TYPE_CHECKING:
    # Hidden from mypy, which would otherwise accept any attribute of this module; it
    # sees the two names through the import above instead.

    def __getattr__(name: str) -> object:
        if name in _EMBEDDED_NAMES:
            import libs.redis_embedded

            value = getattr(libs.redis_embedded, name)
            globals()[name] = value
            return value
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(globals()) | _EMBEDDED_NAMES)
