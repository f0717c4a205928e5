"""Redis access for the market data service.

``RedisClient`` (cache reads and writes) and ``EventPublisher`` (pub/sub) are the
spec's contract; ``RedisConnectionParams`` is the one description of how to reach a
server, shared with the pipelined writer; ``EmbeddedRedis`` runs a private
``redis-server`` for demos and tests. Errors are this package's own (``exceptions``).
"""

from libs.redis_client.client import RedisClient
from libs.redis_client.embedded import EmbeddedRedis, find_redis_server
from libs.redis_client.exceptions import (
    RedisClientError,
    RedisCommandError,
    RedisConnectionError,
)
from libs.redis_client.params import RedisConnectionParams
from libs.redis_client.publisher import EventPublisher

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
