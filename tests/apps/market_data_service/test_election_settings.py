"""LEADER_ELECTION, LEADER_LEASE_TTL and INSTANCE_ID: defaults and validation."""

from __future__ import annotations

import os
import re

import pytest

from apps.market_data_service.config import Settings, SettingsError, load_settings
from libs.market_data import defaults
from libs.market_data.leadership.fencing import INSTANCE_ID_PATTERN

KEYS = {"alpaca_api_key": "k", "alpaca_secret_key": "s", "_env_file": None}


def test_defaults_are_todays_single_instance() -> None:
    settings = Settings(**KEYS)  # type: ignore[arg-type]
    assert settings.leader_election == "off" == defaults.LEADER_ELECTION
    assert settings.leader_lease_ttl == 1.5 == defaults.LEADER_LEASE_TTL
    assert settings.instance_id.endswith(f"-{os.getpid()}")
    assert re.fullmatch(INSTANCE_ID_PATTERN, settings.instance_id)
    assert "leader_election" not in settings.summary()


def test_redis_election_with_a_fractional_ttl() -> None:
    settings = Settings(
        **KEYS,  # type: ignore[arg-type]
        leader_election=" Redis ",
        leader_lease_ttl="0.75",
        instance_id="web-1",
    )
    assert (settings.leader_election, settings.leader_lease_ttl) == ("redis", 0.75)
    assert "leader_election=redis lease_ttl=0.75s instance=web-1" in settings.summary()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("leader_election", "zookeeper"),
        ("leader_lease_ttl", "0.1"),
        ("leader_lease_ttl", "inf"),
        ("leader_lease_ttl", "61"),
        ("instance_id", "has space"),
        ("instance_id", ""),
        ("instance_id", "x" * 65),
    ],
)
def test_bad_values_name_the_setting(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name.upper()):
        load_settings(**KEYS, **{name: value})


async def test_election_runs_on_a_cluster_with_the_cluster_names() -> None:
    from apps.market_data_service.service import MarketDataService

    settings = load_settings(**KEYS, leader_election="redis", redis_cluster_nodes="127.0.0.1:7000")
    service = MarketDataService(settings)
    try:
        assert service.election is not None
        # The lease and its stamp share a slot; the writers' guard reads them there.
        assert service.election.keys.leader_key == "{market_data:leader}"
        assert service.election.keys.epoch_key == "{market_data:leader}:epoch"
        assert service.election.keys.price_key("AAPL") == "price:{AAPL}"
    finally:
        await service.redis_client.close()
        await service.broker.aclose()
