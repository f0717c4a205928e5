"""RedisConnectionParams: URL parsing, redaction, redis-py kwargs."""

from __future__ import annotations

import dataclasses

import pytest
import redis

from libs.redis_client import RedisConnectionParams

__all__: list[str] = []

SECRET = "s3cr3t-p@ss/w:rd"


def test_defaults_match_the_spec() -> None:
    params = RedisConnectionParams()
    assert (params.host, params.port, params.db) == ("localhost", 6379, 0)
    assert params.password is None and params.unix_socket_path is None and not params.ssl
    assert params.socket_timeout == 5.0


def test_redis_url() -> None:
    params = RedisConnectionParams.from_url("redis://cache.internal:6380/2")
    assert params == RedisConnectionParams(host="cache.internal", port=6380, db=2)


def test_redis_url_defaults_port_and_db() -> None:
    assert RedisConnectionParams.from_url("redis://h") == RedisConnectionParams(host="h")


def test_credentials_are_percent_decoded() -> None:
    params = RedisConnectionParams.from_url("redis://alice:s3cr3t-p%40ss%2Fw%3Ard@h:1/3")
    assert params.username == "alice"
    assert params.password == SECRET
    assert (params.host, params.port, params.db) == ("h", 1, 3)


def test_password_only_url() -> None:
    params = RedisConnectionParams.from_url("redis://:pw@h")
    assert params.username is None
    assert params.password == "pw"


def test_db_from_query() -> None:
    assert RedisConnectionParams.from_url("redis://h?db=5").db == 5


def test_db_given_twice_must_agree() -> None:
    assert RedisConnectionParams.from_url("redis://h/5?db=5").db == 5
    with pytest.raises(ValueError, match="db given twice"):
        RedisConnectionParams.from_url("redis://h/5?db=6")


def test_rediss_url_enables_tls() -> None:
    params = RedisConnectionParams.from_url("rediss://h:6390/1?ssl_ca_certs=/etc/ca.pem")
    assert params.ssl
    assert params.ssl_ca_certs == "/etc/ca.pem"
    assert (params.port, params.db) == (6390, 1)


def test_unix_url() -> None:
    params = RedisConnectionParams.from_url("unix:///run/redis/redis.sock?db=4")
    assert params.unix_socket_path == "/run/redis/redis.sock"
    assert params.db == 4


def test_unix_url_with_password() -> None:
    params = RedisConnectionParams.from_url("unix://:pw@/tmp/r.sock")
    assert params.unix_socket_path == "/tmp/r.sock"
    assert params.password == "pw"


def test_socket_timeout_from_query() -> None:
    assert RedisConnectionParams.from_url("redis://h?socket_timeout=0.5").socket_timeout == 0.5


@pytest.mark.parametrize(
    "url",
    [
        "http://h",
        "redis://h:notaport",
        "redis://h/notadb",
        "redis://h?colour=blue",
        "unix://",
        "redis://h?ssl_ca_certs=/ca.pem",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="invalid Redis URL"):
        RedisConnectionParams.from_url(url)


def test_error_for_bad_url_does_not_echo_the_password() -> None:
    with pytest.raises(ValueError) as caught:
        RedisConnectionParams.from_url(f"http://u:{SECRET}@h")
    assert SECRET not in str(caught.value)
    with pytest.raises(ValueError) as caught:
        RedisConnectionParams.from_url("redis://h?password=hunter2&colour=blue")
    assert "hunter2" not in str(caught.value)


def test_repr_hides_the_password() -> None:
    params = RedisConnectionParams(host="h", password=SECRET)
    assert SECRET not in repr(params)
    assert SECRET not in str(params)
    assert "password=***" in repr(params)
    assert "password=None" in repr(RedisConnectionParams())


def test_redacted_url_hides_the_password() -> None:
    params = RedisConnectionParams(host="h", port=1, db=2, username="alice", password=SECRET)
    assert params.redacted_url() == "redis://alice:***@h:1/2"
    unix = RedisConnectionParams(unix_socket_path="/tmp/r.sock", password=SECRET)
    assert unix.redacted_url() == "unix://:***@/tmp/r.sock"
    assert RedisConnectionParams().redacted_url() == "redis://localhost:6379/0"


@pytest.mark.parametrize(
    "params",
    [
        RedisConnectionParams(),
        RedisConnectionParams(host="h", port=1, db=3, username="u", password=SECRET),
        RedisConnectionParams(host="::1", password="pw"),
        RedisConnectionParams(host="h", ssl=True, ssl_ca_certs="/etc/ca.pem", socket_timeout=0.25),
        RedisConnectionParams(unix_socket_path="/tmp/dir with space/r.sock", db=2, password="a b"),
    ],
    ids=["defaults", "credentials", "ipv6", "tls", "unix"],
)
def test_to_url_round_trips(params: RedisConnectionParams) -> None:
    assert RedisConnectionParams.from_url(params.to_url()) == params


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"port": 0}, "port"),
        ({"port": 70000}, "port"),
        ({"db": -1}, "db"),
        ({"socket_timeout": 0}, "socket_timeout"),
        ({"unix_socket_path": "/tmp/r.sock", "ssl": True}, "unix socket"),
    ],
)
def test_invalid_fields_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisConnectionParams(**kwargs)  # type: ignore[arg-type]


def test_is_frozen_and_hashable() -> None:
    params = RedisConnectionParams()
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.port = 1  # type: ignore[misc]
    assert len({params, RedisConnectionParams()}) == 1


def test_redis_kwargs_tcp() -> None:
    kwargs = RedisConnectionParams(host="h", port=1, db=2, password="pw").redis_kwargs()
    assert kwargs["host"] == "h" and kwargs["port"] == 1 and kwargs["db"] == 2
    assert kwargs["password"] == "pw"
    assert kwargs["socket_timeout"] == kwargs["socket_connect_timeout"] == 5.0
    assert "unix_socket_path" not in kwargs and "ssl" not in kwargs


def test_redis_kwargs_unix_and_tls() -> None:
    unix = RedisConnectionParams(unix_socket_path="/tmp/r.sock").redis_kwargs()
    assert unix["unix_socket_path"] == "/tmp/r.sock"
    assert "host" not in unix
    tls = RedisConnectionParams(ssl=True, ssl_ca_certs="/ca.pem").redis_kwargs()
    assert tls["ssl"] is True and tls["ssl_ca_certs"] == "/ca.pem"


def test_redis_kwargs_reach_a_real_server(redis_params: RedisConnectionParams) -> None:
    with redis.Redis(**redis_params.redis_kwargs()) as client:
        assert client.ping() is True
