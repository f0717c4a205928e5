"""REDIS_CLUSTER_NODES: parsed with the Redis credentials, refused when it cannot work."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.market_data_service.config import Settings, SettingsError, load_settings
from libs.redis_client.cluster import ClusterRedisClient


def settings(**overrides: object) -> Settings:
    return Settings(
        alpaca_api_key="AKTESTKEY0123456789",
        alpaca_secret_key="s3cr3t-VALUE-never-shown-0123456789",
        _env_file=None,
        **overrides,  # type: ignore[arg-type]
    )


def test_cluster_nodes_take_the_password_and_tls_of_the_redis_settings() -> None:
    s = settings(redis_cluster_nodes="10.0.0.1:7000,10.0.0.2:7000", redis_password="pw",
                 redis_ssl=True)  # fmt: skip
    cluster = s.cluster_params()
    assert cluster is not None
    assert cluster.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 7000))
    assert cluster.node("10.0.0.2", 7000).password == "pw"
    assert cluster.base.ssl
    assert "redis=cluster:10.0.0.1:7000,10.0.0.2:7000" in s.summary()
    assert "pw" not in s.summary()
    assert settings().cluster_params() is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_CLUSTER_NODES": "10.0.0.1"}, "not host:port"),
        ({"REDIS_CLUSTER_NODES": "h:7000", "REDIS_DB": "3"}, "database 0"),
    ],
)
def test_a_cluster_setting_that_cannot_work_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, env: dict[str, str], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALPACA_API_KEY", "AKTESTKEY0123456789")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "s3cr3t-VALUE-never-shown-0123456789")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=message):
        load_settings()


async def test_the_service_builds_a_cluster_client() -> None:
    from apps.market_data_service.service import MarketDataService

    service = MarketDataService(settings(redis_cluster_nodes="127.0.0.1:7000"))
    try:
        assert isinstance(service.redis_client, ClusterRedisClient)
        assert service.stream.keys.price_key("AAPL") == "price:{AAPL}"
    finally:
        await service.redis_client.close()
        await service.broker.aclose()
