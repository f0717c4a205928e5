"""Connection names, the writers' epoch guard, and which connections a new leader kills."""

from __future__ import annotations

import re

import pytest

from libs.market_data.keys import KeySpace
from libs.market_data.leadership.fencing import (
    INSTANCE_ID_PATTERN,
    EpochGuard,
    connection_name,
    default_instance_id,
    name_epoch,
    older_connections,
    stamp,
)
from libs.redis_client.exceptions import RedisFencedError


def test_names_carry_namespace_and_epoch() -> None:
    assert connection_name("paper", 7, "web-1") == "md:paper:e7:web-1"
    assert name_epoch("md:paper:e7:web-1", "paper") == 7
    assert name_epoch("md::e7:web-1", "") == 7
    assert name_epoch("md:paper:e7:web-1", "live") is None  # another group
    assert name_epoch("md:paper:ex:web-1", "paper") is None
    assert name_epoch("", "paper") is None


def test_older_connections_of_this_namespace_only() -> None:
    clients = [
        {"id": "1", "name": "md:paper:e3:a"},
        {"id": "2", "name": "md:paper:e4:b"},
        {"id": "3", "name": "md:paper:e5:b"},
        {"id": "4", "name": "md:live:e1:c"},
        {"id": "5", "name": ""},
        {"id": "6", "name": "something-else"},
    ]
    assert older_connections(clients, "paper", 5) == [1, 2]


def test_default_instance_id_is_a_valid_setting() -> None:
    assert re.fullmatch(INSTANCE_ID_PATTERN, default_instance_id())


def test_guard_names_then_checks_and_refuses_any_other_stamp() -> None:
    fenced: list[bool] = []
    guard = EpochGuard(KeySpace("paper"), "web-1", on_fenced=lambda: fenced.append(True))
    guard.lead(7, "tok")
    assert guard.commands() == [
        ("CLIENT", "SETNAME", "md:paper:e7:web-1"),
        ("GET", "paper:market_data:leader:epoch"),
    ]
    guard.check([b"OK", stamp(7, "tok").encode()])  # ours: accepted
    for found in (stamp(8, "new").encode(), stamp(7, "other").encode(), None):
        with pytest.raises(RedisFencedError):
            guard.check([b"OK", found])
    assert len(fenced) == 3 and guard.refusals == 3


def test_a_guard_that_stepped_down_refuses_everything() -> None:
    guard = EpochGuard(KeySpace(), "web-1")
    guard.lead(2, "tok")
    guard.step_down()
    with pytest.raises(RedisFencedError):
        guard.check([b"OK", stamp(2, "tok").encode()])
