"""``RedisClient``: the few key/value operations the service needs, on redis-py asyncio.

Values are bytes in and out (``decode_responses=False``): the cache holds JSON that
callers decode themselves, so no text round trip is wasted. Every redis-py error is
translated at this boundary (see ``exceptions``); ``.redis`` stays public for the
odd command not wrapped here, and those calls are not translated.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Self, TypedDict, cast

import redis.asyncio
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from libs.redis_client.exceptions import RedisCommandError, RedisConnectionError
from libs.redis_client.params import DEFAULT_SOCKET_TIMEOUT, RedisConnectionParams

__all__ = ["DEFAULT_RETRIES", "ClientOptions", "RedisClient", "translate_errors"]

logger = logging.getLogger(__name__)

# redis-py 8 retries a failed command 10 times with up to 1 s between tries (~5 s per
# call while Redis is down). A real-time writer would rather hear about the outage at
# once and decide itself; two quick retries still cover the common case of a pooled
# socket that died with a Redis restart.
DEFAULT_RETRIES = 2
_RETRY_BASE = 0.01
_RETRY_CAP = 0.2

Value = bytes | str | int | float


@contextmanager
def translate_errors(params: RedisConnectionParams, action: str) -> Iterator[None]:
    """Re-raise redis-py (and socket) errors as this package's, original on ``__cause__``."""
    try:
        yield
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as exc:
        if _is_auth_failure(exc):
            raise RedisConnectionError(
                f"{action}: Redis at {params.redacted_url()} refused the credentials: {exc}"
            ) from exc
        raise RedisConnectionError(
            f"{action}: cannot reach Redis at {params.redacted_url()}: {exc}"
        ) from exc
    except redis.exceptions.RedisClusterException as exc:
        # Not a RedisError: redis-py's "Redis Cluster cannot be connected" (no seed node
        # reachable: down, TLS refused, wrong password) and "slot not covered".
        kind = "refused the credentials" if _is_auth_failure(exc) else "cannot be reached"
        raise RedisConnectionError(
            f"{action}: Redis Cluster at {params.redacted_url()} {kind}: {exc}"
        ) from exc
    except redis.exceptions.RedisError as exc:
        raise RedisCommandError(
            f"{action}: Redis at {params.redacted_url()} answered with an error: {exc}"
        ) from exc
    except OSError as exc:
        # redis-py wraps most socket errors, but not every path (e.g. TLS setup).
        raise RedisConnectionError(
            f"{action}: cannot reach Redis at {params.redacted_url()}: {exc!r}"
        ) from exc


def _is_auth_failure(exc: BaseException) -> bool:
    # Over a unix socket redis-py wraps the AuthenticationError in a ConnectionError.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, redis.exceptions.AuthenticationError):
            return True
        seen = seen.__cause__
    return False


def build_redis(params: RedisConnectionParams, retries: int) -> redis.asyncio.Redis:
    """A redis-py asyncio client with our retry policy and bytes responses."""
    retry = Retry(ExponentialWithJitterBackoff(base=_RETRY_BASE, cap=_RETRY_CAP), retries)
    return redis.asyncio.Redis(**params.redis_kwargs(), decode_responses=False, retry=retry)


class ClientOptions(TypedDict, total=False):
    """The keyword arguments of :class:`RedisClient` after ``host`` and ``port``; other
    classes that open a client for their caller (``EventPublisher``) take the same."""

    db: int
    password: str | None
    username: str | None
    unix_socket_path: str | None
    ssl: bool
    ssl_ca_certs: str | None
    socket_timeout: float
    params: RedisConnectionParams | None
    retries: int


class RedisClient:
    """Async Redis key/value client.

    ``RedisClient(host="localhost", port=6379)`` as in the spec, or
    ``RedisClient(params=...)`` / ``RedisClient.from_url(...)``; when ``params`` is
    given the other connection arguments are ignored. Connections are opened lazily
    on first use, so constructing one never blocks or fails on an absent server.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        db: int = 0,
        password: str | None = None,
        *,
        username: str | None = None,
        unix_socket_path: str | None = None,
        ssl: bool = False,
        ssl_ca_certs: str | None = None,
        socket_timeout: float = DEFAULT_SOCKET_TIMEOUT,
        params: RedisConnectionParams | None = None,
        retries: int = DEFAULT_RETRIES,
    ) -> None:
        if params is None:
            params = RedisConnectionParams(
                host=host,
                port=port,
                db=db,
                username=username,
                password=password,
                unix_socket_path=unix_socket_path,
                ssl=ssl,
                ssl_ca_certs=ssl_ca_certs,
                socket_timeout=socket_timeout,
            )
        self.params: RedisConnectionParams = params
        self.redis: redis.asyncio.Redis = build_redis(params, retries)
        self._closed = False
        logger.debug("Redis client for %s", params.redacted_url())

    @classmethod
    def from_url(cls, url: str, *, retries: int = DEFAULT_RETRIES) -> Self:
        """Client for a ``redis://``, ``rediss://`` or ``unix://`` URL."""
        return cls(params=RedisConnectionParams.from_url(url), retries=retries)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params.redacted_url()!r})"

    async def get(self, key: str) -> bytes | None:
        """The value at ``key``, or None if it does not exist."""
        with translate_errors(self.params, f"GET {key}"):
            value = await self.redis.get(key)
        # decode_responses=False: redis-py's str in its return type never happens here.
        return cast("bytes | None", value)

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        """Values of ``keys`` in order (None where missing), in one round trip."""
        if not keys:
            return []
        with translate_errors(self.params, f"MGET of {len(keys)} keys"):
            values = await self.redis.mget(list(keys))
        return cast("list[bytes | None]", values)

    async def hgetall(self, key: str) -> dict[str, str]:
        """A hash's fields and values, decoded as UTF-8 text."""
        with translate_errors(self.params, f"HGETALL {key}"):
            raw = await self.redis.hgetall(key)
        return {k.decode(): v.decode() for k, v in cast("dict[bytes, bytes]", raw).items()}

    async def hset(self, key: str, mapping: Mapping[str, str]) -> None:
        """Set hash fields (no-op for an empty mapping)."""
        if not mapping:
            return
        with translate_errors(self.params, f"HSET {key}"):
            fields: dict[Any, Any] = dict(mapping)  # redis-py's Mapping type is invariant
            await self.redis.hset(key, mapping=fields)

    async def replace_hash(self, key: str, mapping: Mapping[str, str]) -> None:
        """Make ``key`` hold exactly ``mapping`` (deleted when empty), in one transaction."""
        with translate_errors(self.params, f"MULTI DEL+HSET {key}"):
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if mapping:
                    fields: dict[Any, Any] = dict(mapping)
                    pipe.hset(key, mapping=fields)
                await pipe.execute()

    async def hdel(self, key: str, *fields: str) -> int:
        """Delete hash fields; returns how many existed."""
        if not fields:
            return 0
        with translate_errors(self.params, f"HDEL {key}"):
            return int(await self.redis.hdel(key, *fields))

    async def set(self, key: str, value: Value, ttl: int | None = None) -> None:
        """Store ``value`` at ``key``; with ``ttl`` it expires after that many seconds."""
        with translate_errors(self.params, f"SET {key}"):
            await self.redis.set(key, value, ex=ttl)

    async def setex(self, key: str, ttl: int, value: Value) -> None:
        """Store ``value`` at ``key`` expiring after ``ttl`` seconds (the spec's cache write)."""
        with translate_errors(self.params, f"SETEX {key}"):
            # redis-py 8 deprecates its setex(); SET EX is the same command server-side.
            await self.redis.set(key, value, ex=ttl)

    async def delete(self, *keys: str) -> int:
        """Delete ``keys``; returns how many existed."""
        if not keys:
            return 0
        with translate_errors(self.params, f"DEL of {len(keys)} keys"):
            removed: int = await self.redis.delete(*keys)
        return removed

    async def ttl(self, key: str) -> int:
        """Seconds left before ``key`` expires; -1 if it never expires, -2 if missing."""
        with translate_errors(self.params, f"TTL {key}"):
            remaining: int = await self.redis.ttl(key)
        return remaining

    async def exists(self, key: str) -> bool:
        """Whether ``key`` exists."""
        with translate_errors(self.params, f"EXISTS {key}"):
            count: int = await self.redis.exists(key)
        return count > 0

    async def ping(self) -> float:
        """Round-trip time of a PING in seconds; raises if Redis does not answer."""
        with translate_errors(self.params, "PING"):
            started = time.perf_counter()
            await self.redis.ping()
            return time.perf_counter() - started

    async def scan_iter(self, pattern: str = "*", *, count: int = 1000) -> AsyncIterator[str]:
        """Keys matching ``pattern``, walked with SCAN (KEYS would block Redis).

        SCAN may yield a key more than once and misses keys created meanwhile.
        """
        with translate_errors(self.params, f"SCAN {pattern}"):
            async for key in self.redis.scan_iter(match=pattern, count=count):
                yield _key_text(key)

    async def keys(self, pattern: str = "*", *, count: int = 1000) -> list[str]:
        """Distinct keys matching ``pattern``, via SCAN, in the order Redis gave them."""
        found: dict[str, None] = {}
        async for key in self.scan_iter(pattern, count=count):
            found[key] = None
        return list(found)

    async def close(self) -> None:
        """Close the connection pool; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        with translate_errors(self.params, "close"):
            await self.redis.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def _key_text(key: Any) -> str:
    # One stray non-UTF-8 key must not break a whole walk; surrogateescape keeps its bytes.
    return key.decode("utf-8", "surrogateescape") if isinstance(key, bytes) else str(key)
