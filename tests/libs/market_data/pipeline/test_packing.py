"""The inlined frame formats are byte for byte hiredis's commands, on both paths: the
Python loop and the native one (libs/market_data/native/_packing.c)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import hiredis
import pytest

from libs.market_data import native
from libs.market_data.keys import KeySpace
from libs.market_data.native import _packing
from libs.market_data.pipeline import packing
from libs.market_data.pipeline.packing import FramePacker
from libs.market_data.pipeline.processor import PriceUpdate

if not native.available():  # a broken setup, never a skip
    raise RuntimeError("the native path is not built: run `make setup` (needs cc)")


@pytest.fixture(autouse=True, params=["native", "python"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "python":
        monkeypatch.setattr(native, "pack", None)
    yield request.param


def test_a_frame_packs_to_hiredis_commands_and_records_the_newest() -> None:
    updates: list[PriceUpdate] = [
        ("AAPL", b'{"mid":"1"}', b'{"price":"1"}'),
        ("BRK.B", b'{"mid":"2"}', b'{"price":"2"}'),
        ("AAPL", b'{"mid":"3"}', b'{"price":"3"}'),
    ]
    latest: dict[str, PriceUpdate] = {}
    sets, events, written = FramePacker(300).pack(updates, latest)
    # One SET per symbol, holding its newest record; every update keeps its PUBLISH.
    assert written == [updates[2], updates[1]]
    assert sets == b"".join(
        hiredis.pack_command(("SET", f"price:{s}", price, "EX", 300)) for s, price, _ in written
    )
    assert events == b"".join(
        hiredis.pack_command(("PUBLISH", f"price.updated.{s}", event)) for s, _, event in updates
    )
    assert latest == {"AAPL": updates[2], "BRK.B": updates[1]}


def test_trade_and_bar_topics_pack_to_their_keys_and_channels() -> None:
    updates: list[PriceUpdate] = [
        ("trades:AAPL", b'{"t":1}', b'{"e":1}'),
        ("bars:BTC/USD", b'{"b":1}', b'{"e":2}'),
        ("AAPL", b'{"q":1}', b'{"e":3}'),
    ]
    sets, events, _ = FramePacker(60, KeySpace("paper")).pack(updates, {})
    assert sets == b"".join(
        hiredis.pack_command(("SET", key, value, "EX", 60))
        for key, value in [
            ("paper:trade:AAPL", b'{"t":1}'),
            ("paper:bar:BTC/USD", b'{"b":1}'),
            ("paper:price:AAPL", b'{"q":1}'),
        ]
    )
    assert events == b"".join(
        hiredis.pack_command(("PUBLISH", channel, event))
        for channel, event in [
            ("paper:trade.updated.AAPL", b'{"e":1}'),
            ("paper:bar.updated.BTC/USD", b'{"e":2}'),
            ("paper:price.updated.AAPL", b'{"e":3}'),
        ]
    )


def test_the_events_of_part_of_a_frame() -> None:
    update: PriceUpdate = ("MSFT", b"{}", b'{"price":"5"}')
    assert FramePacker(60).events([update]) == hiredis.pack_command(
        ("PUBLISH", "price.updated.MSFT", b'{"price":"5"}')
    )


def test_both_paths_pack_random_frames_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    # A name cache of 3 topics is cleared mid-frame, as the whole market clears it.
    monkeypatch.setattr(packing, "_NAME_CACHE_LIMIT", 3)
    rng = random.Random(5)
    topics = ["AAPL", "MSFT", "trades:AAPL", "bars:MSFT", "BRK.B", "X" * 300, "É"]
    packers, latests = (FramePacker(30), FramePacker(30)), ({}, {})
    native_pack = _packing.pack
    for _ in range(200):
        updates: list[PriceUpdate] = [
            (rng.choice(topics), rng.randbytes(rng.choice([0, 5, 300])), rng.randbytes(9))
            for _ in range(rng.randint(1, 12))
        ]
        monkeypatch.setattr(native, "pack", native_pack)
        first = packers[0].pack(updates, latests[0])
        monkeypatch.setattr(native, "pack", None)
        second = packers[1].pack(updates, latests[1])
        assert first == second
        assert latests[0] == latests[1]
