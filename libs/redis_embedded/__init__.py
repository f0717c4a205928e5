"""A private ``redis-server`` child for demos and tests (``EmbeddedRedis``).

A dev/test tool, kept out of ``libs.redis_client`` so that production imports do not
load libc through ctypes nor register an ``atexit`` hook. ``binary`` finds the
``redis-server`` to run, ``command`` builds its command line, ``spawner`` forks it so
that it dies with us, ``process`` waits for it to answer and stops it, ``lifecycle``
holds what every child shares (the exit reaper, context managers), and ``server`` is the
``EmbeddedRedis`` lifecycle on top.
"""

from libs.redis_embedded.binary import (
    REDIS_SERVER_BIN_ENV,
    find_bundled_redis_server,
    find_redis_server,
    supports_tls,
)
from libs.redis_embedded.command import TlsFiles
from libs.redis_embedded.server import EmbeddedRedis

__all__ = [
    "REDIS_SERVER_BIN_ENV",
    "EmbeddedRedis",
    "TlsFiles",
    "find_bundled_redis_server",
    "find_redis_server",
    "supports_tls",
]
