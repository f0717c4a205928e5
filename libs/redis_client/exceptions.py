"""Errors raised by ``libs.redis_client``.

Callers never need to import redis-py: its errors are translated where they leave
this package (``raise ... from exc``), so the original stays on ``__cause__``.

    RedisClientError            base; also a missing redis-server binary, a server that
    │                           would not start, bad use of the API
    ├── RedisConnectionError    Redis cannot be reached or answered too late: network,
    │                           timeout, refused authentication. Retrying may help.
    ├── RedisCommandError       Redis answered with an error (WRONGTYPE, bad TTL, ...).
    │                           Retrying the same command will not help.
    └── RedisFencedError        a writer's connection guard refused a new connection: a
                                newer writer holds the epoch (docs/leadership.md).

Messages name the server by its redacted URL and never carry a password.
"""

from __future__ import annotations

__all__ = ["RedisClientError", "RedisCommandError", "RedisConnectionError", "RedisFencedError"]


class RedisClientError(Exception):
    """Base of every error raised by ``libs.redis_client``."""


class RedisConnectionError(RedisClientError):
    """Redis could not be reached, timed out, or refused the credentials."""


class RedisCommandError(RedisClientError):
    """Redis executed the command and answered with an error."""


class RedisFencedError(RedisClientError):
    """A connection guard refused the connection: another writer holds a newer epoch."""
