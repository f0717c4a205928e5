"""The sans-I/O slow-client policy: a clock and offers, no sockets."""

from __future__ import annotations

import json

from apps.market_data_service.streaming.client import ClientBuffer, ClientPolicy, ClientState
from apps.market_data_service.streaming.messages import frame


def price(symbol: str, seq: int) -> bytes:
    return json.dumps({"type": "price", "data": {"symbol": symbol, "seq": seq}}).encode()


def control(name: str) -> bytes:
    return json.dumps({"type": name}).encode()


def decoded(messages: list[bytes]) -> list[dict[str, object]]:
    return [json.loads(m) for m in messages]


def seqs(messages: list[bytes]) -> list[tuple[str, int]]:
    return [(m["data"]["symbol"], m["data"]["seq"]) for m in decoded(messages)  # type: ignore[index]
            if m["type"] == "price"]  # fmt: skip


def test_a_client_that_keeps_up_gets_every_update_in_order() -> None:
    buffer = ClientBuffer()
    for seq in range(1, 4):
        buffer.offer_price("AAPL", price("AAPL", seq), now=0.0)
        buffer.offer_price("MSFT", price("MSFT", seq), now=0.0)
    messages = buffer.take()
    assert seqs(messages) == [("AAPL", 1), ("MSFT", 1), ("AAPL", 2), ("MSFT", 2),
                              ("AAPL", 3), ("MSFT", 3)]  # fmt: skip
    buffer.send_started(0.0)
    buffer.send_finished(0.0, len(messages))
    assert buffer.take() == [] and buffer.check(100.0) is None
    # Several messages travel as one JSON array.
    assert json.loads(frame(messages))[0]["data"]["seq"] == 1


def test_behind_the_newest_price_replaces_the_pending_one_and_the_count_is_reported() -> None:
    buffer = ClientBuffer()
    buffer.offer_price("AAPL", price("AAPL", 1), now=0.0)
    sent = buffer.take()
    buffer.send_started(0.0)  # the socket does not take it yet
    for seq in range(2, 12):
        buffer.offer_price("AAPL", price("AAPL", seq), now=0.1)
    buffer.offer_price("MSFT", price("MSFT", 1), now=0.1)
    assert buffer.pending == 2  # one per symbol
    buffer.send_finished(0.2, len(sent))
    messages = decoded(buffer.take())
    assert messages[0] == {"type": "coalesced", "replaced": 9, "symbols": ["AAPL"]}
    assert [(m["data"]["symbol"], m["data"]["seq"]) for m in messages[1:]] == [  # type: ignore[index]
        ("AAPL", 11), ("MSFT", 1)]  # fmt: skip
    assert buffer.replaced_total == 9
    # Reported once: the next frame has no notice.
    buffer.offer_price("AAPL", price("AAPL", 12), now=0.3)
    assert [m["type"] for m in decoded(buffer.take())] == ["price"]


def test_a_price_never_overtakes_a_control_message() -> None:
    buffer = ClientBuffer()
    buffer.take()
    buffer.send_started(0.0)
    buffer.offer_price("AAPL", price("AAPL", 5), now=0.0)
    buffer.offer_control(control("resync"), now=0.0)
    buffer.offer_control(control("snapshot"), now=0.0)
    buffer.offer_price("AAPL", price("AAPL", 9), now=0.0)
    buffer.offer_price("AAPL", price("AAPL", 10), now=0.0)  # replaces 9, not 5
    buffer.send_finished(0.0, 0)
    kinds = [(m["type"], m.get("data", {}).get("seq")) for m in decoded(buffer.take())]  # type: ignore[attr-defined]
    assert kinds == [("coalesced", None), ("price", 5), ("resync", None), ("snapshot", None),
                     ("price", 10)]  # fmt: skip


def test_the_soft_limit_coalesces_without_a_blocked_send() -> None:
    buffer = ClientBuffer(ClientPolicy(soft_pending=3))
    for seq in range(1, 10):
        buffer.offer_price("AAPL", price("AAPL", seq), now=0.0)
    assert buffer.pending == 3
    assert seqs(buffer.take()) == [("AAPL", 1), ("AAPL", 2), ("AAPL", 9)]


def test_the_frame_limit_splits_and_keeps_the_rest_replaceable() -> None:
    buffer = ClientBuffer(ClientPolicy(max_frame_messages=2))
    for symbol in ("A", "B", "C"):
        buffer.offer_price(symbol, price(symbol, 1), now=0.0)
    assert seqs(buffer.take()) == [("A", 1), ("B", 1)]
    buffer.send_started(0.0)
    buffer.offer_price("C", price("C", 2), now=0.0)
    buffer.send_finished(0.0, 2)
    assert seqs(buffer.take()[1:]) == [("C", 2)]


def test_behind_for_too_long_is_closed() -> None:
    buffer = ClientBuffer(ClientPolicy(max_behind=5.0))
    buffer.offer_price("AAPL", price("AAPL", 1), now=0.0)
    buffer.take()
    buffer.send_started(0.0)
    buffer.offer_price("AAPL", price("AAPL", 2), now=1.0)  # behind since 1.0
    buffer.send_finished(2.0, 1)  # done, but something still waits: still behind
    buffer.send_started(2.0)
    buffer.take()
    buffer.send_finished(2.1, 1)
    assert buffer.check(5.9) is None
    buffer.send_started(3.0)
    buffer.offer_price("AAPL", price("AAPL", 3), now=3.0)
    assert buffer.check(5.9) is None
    assert buffer.check(8.1) == "too slow: a send blocked for more than 5 s"
    assert buffer.state is ClientState.CLOSING and buffer.pending == 0
    buffer.offer_price("AAPL", price("AAPL", 4), now=9.0)  # nothing queued once closing
    assert buffer.pending == 0


def test_a_client_that_catches_up_is_forgiven() -> None:
    buffer = ClientBuffer(ClientPolicy(max_behind=5.0))
    buffer.take()
    buffer.send_started(0.0)
    buffer.offer_price("AAPL", price("AAPL", 1), now=0.0)
    buffer.send_finished(1.0, 0)
    buffer.take()
    buffer.send_started(1.0)
    buffer.send_finished(1.5, 1)  # nothing pending: caught up
    assert buffer.check(100.0) is None


def test_behind_with_sends_that_finish_but_never_catch_up_is_closed() -> None:
    buffer = ClientBuffer(ClientPolicy(max_behind=5.0))
    for t in range(10):
        buffer.take()
        buffer.send_started(float(t))
        buffer.offer_price("AAPL", price("AAPL", t), now=float(t) + 0.5)
        buffer.send_finished(float(t) + 0.9, 1)
    assert buffer.check(9.0) == "too slow: behind for more than 5 s"


def test_too_many_bytes_pending_is_closed() -> None:
    buffer = ClientBuffer(ClientPolicy(max_pending_bytes=1000))
    for _ in range(40):
        buffer.offer_control(control("snapshot"), now=0.0)
    assert buffer.check(0.0) is None  # 800 bytes
    for _ in range(20):
        buffer.offer_control(control("snapshot"), now=0.0)
    assert buffer.check(0.0) == "too slow: more than 1000 bytes pending"
