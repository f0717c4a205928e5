"""The inlined frame formats are byte for byte hiredis's commands."""

from __future__ import annotations

import hiredis

from libs.market_data.pipeline.packing import FramePacker
from libs.market_data.pipeline.processor import PriceUpdate


def test_a_frame_packs_to_hiredis_commands_and_records_the_newest() -> None:
    updates: list[PriceUpdate] = [
        ("AAPL", b'{"mid":"1"}', b'{"price":"1"}'),
        ("BRK.B", b'{"mid":"2"}', b'{"price":"2"}'),
        ("AAPL", b'{"mid":"3"}', b'{"price":"3"}'),
    ]
    latest: dict[str, PriceUpdate] = {}
    sets, events = FramePacker(300).pack(updates, latest)
    assert sets == b"".join(
        hiredis.pack_command(("SET", f"price:{s}", price, "EX", 300)) for s, price, _ in updates
    )
    assert events == b"".join(
        hiredis.pack_command(("PUBLISH", f"price.updated.{s}", event)) for s, _, event in updates
    )
    assert latest == {"AAPL": updates[2], "BRK.B": updates[1]}


def test_the_events_of_part_of_a_frame() -> None:
    update: PriceUpdate = ("MSFT", b"{}", b'{"price":"5"}')
    assert FramePacker(60).events([update]) == hiredis.pack_command(
        ("PUBLISH", "price.updated.MSFT", b'{"price":"5"}')
    )
