"""find_redis_server: the env var, then PATH, then the bundled binary."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest

from libs.redis_client import RedisClientError
from libs.redis_embedded import REDIS_SERVER_BIN_ENV, find_redis_server
from tests.libs.redis_embedded.support import bundled

__all__: list[str] = []


def test_env_var_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_SERVER_BIN_ENV, bundled())
    assert find_redis_server() == bundled()


def test_env_var_pointing_nowhere_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REDIS_SERVER_BIN_ENV, "/nonexistent/redis-server")
    with pytest.raises(RedisClientError, match=REDIS_SERVER_BIN_ENV):
        find_redis_server()


def test_path_comes_before_the_bundled_binary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.delenv(REDIS_SERVER_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == str(fake)


def test_falls_back_to_the_bundled_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    binary = bundled()
    monkeypatch.delenv(REDIS_SERVER_BIN_ENV, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_redis_server() == binary


def test_binary_without_exec_bit_is_made_executable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    copy = tmp_path / "redis-server"
    shutil.copyfile(bundled(), copy)
    copy.chmod(0o644)
    monkeypatch.setenv(REDIS_SERVER_BIN_ENV, str(copy))
    assert find_redis_server() == str(copy)
    assert copy.stat().st_mode & stat.S_IXUSR
