"""The board of ``market-data watch`` as a pure model: messages in, rows and events out."""

from __future__ import annotations

from decimal import Decimal

from apps.market_data_service.cli.board import (
    Board,
    CoalescedMessage,
    LinkMessage,
    NoticeMessage,
    PriceMessage,
    Quote,
    ResyncMessage,
)
from libs.telemetry import epoch_seconds

STAMP = "2026-03-02T14:30:00.123456789Z"
T0 = epoch_seconds(STAMP)


def price(
    symbol: str, bid: str, ask: str, seq: int, *, epoch: str = "e1", snapshot: bool = False
) -> PriceMessage:
    b, a = Decimal(bid), Decimal(ask)
    return PriceMessage(
        Quote(symbol, b, a, (b + a) / 2, Decimal(1), Decimal(2), STAMP, seq, epoch), snapshot
    )


def test_rows_keep_the_order_given_and_start_empty() -> None:
    board = Board(["MSFT", "AAPL"])
    rows = board.rows(T0)
    assert [r.symbol for r in rows] == ["MSFT", "AAPL"]
    assert all(r.quote is None and r.age is None and r.changes == {} for r in rows)
    assert board.status().state == "connecting"


def test_a_price_is_kept_exact_with_its_spread_and_age() -> None:
    board = Board(["AAPL"])
    board.apply(price("AAPL", "150.10", "150.13", 1, snapshot=True), T0)
    (row,) = board.rows(T0 + 2.5)
    assert row.quote is not None
    assert str(row.quote.bid) == "150.10"  # the wire's digits, trailing zero included
    assert str(row.quote.spread) == "0.03"
    assert row.age is not None and abs(row.age - 2.5) < 1e-3
    assert board.snapshots == 1 and board.updates == 0 and row.updates == 0


def test_changed_cells_are_highlighted_up_or_down_for_a_while() -> None:
    board = Board(["AAPL"], highlight_seconds=1.0)
    board.apply(price("AAPL", "100.00", "100.10", 1, snapshot=True), T0)
    assert board.rows(T0)[0].changes == {}  # the first price changes nothing
    board.apply(price("AAPL", "100.05", "100.10", 2), T0 + 0.1)
    changes = board.rows(T0 + 0.5)[0].changes
    # bid up, ask the same, mid up, spread down
    assert changes == {"bid": 1, "mid": 1, "spread": -1}
    assert board.rows(T0 + 1.2)[0].changes == {}  # the highlight is over
    assert board.updates == 1


def test_a_seq_jump_is_a_gap_and_repeats_are_dropped() -> None:
    board = Board(["AAPL"])
    board.apply(price("AAPL", "1", "2", 5, snapshot=True), T0)
    assert board.apply(price("AAPL", "1.1", "2", 6), T0) == []
    added = board.apply(price("AAPL", "1.2", "2", 9), T0)
    assert [(e.kind, e.text) for e in added] == [("gap", "AAPL: seq 6 -> 9, 2 not seen")]
    assert board.skipped == 2
    # A repeat or an older update of the same epoch never goes back.
    board.apply(price("AAPL", "0.5", "2", 9), T0)
    board.apply(price("AAPL", "0.5", "2", 7), T0)
    assert board.duplicates == 2
    # Nor does a snapshot older than what an update brought.
    board.apply(price("AAPL", "0.7", "2", 8, snapshot=True), T0)
    quote = board.quote("AAPL")
    assert quote is not None and (quote.seq, str(quote.bid)) == (9, "1.2")


def test_a_jump_the_service_said_it_coalesced_is_not_a_gap() -> None:
    """Behind, the service replaces a symbol's pending update with the newest and says so
    (``coalesced``) before it: that jump is not an update lost (docs/streaming.md)."""
    board = Board(["AAPL", "MSFT"])
    board.apply(price("AAPL", "1", "2", 19, snapshot=True), T0)
    board.apply(price("MSFT", "1", "2", 5, snapshot=True), T0)
    added = board.apply(CoalescedMessage(1, ("AAPL",)), T0)
    assert [(e.kind, e.text) for e in added] == [
        ("info", "behind: 1 older updates replaced (AAPL)")
    ]
    assert board.apply(price("AAPL", "1.1", "2", 21), T0) == []
    assert (board.coalesced, board.skipped) == (1, 0)
    # Only the next update of a named symbol: a later jump, or another symbol's, is a gap.
    gaps = board.apply(price("AAPL", "1.2", "2", 23), T0)
    gaps += board.apply(price("MSFT", "1.2", "2", 7), T0)
    assert [e.text for e in gaps] == [
        "AAPL: seq 21 -> 23, 1 not seen",
        "MSFT: seq 5 -> 7, 1 not seen",
    ]
    assert (board.coalesced, board.skipped, board.status().coalesced) == (1, 2, 1)


def test_a_new_epoch_is_shown_and_numbering_restarts() -> None:
    board = Board(["AAPL"])
    board.apply(price("AAPL", "1", "2", 40), T0)
    added = board.apply(price("AAPL", "1.5", "2", 1, epoch="e2"), T0)
    assert [e.kind for e in added] == ["gap"] and "new epoch e2" in added[0].text
    quote = board.quote("AAPL")
    assert quote is not None and (quote.seq, quote.epoch) == (1, "e2")
    assert board.skipped == 0


def test_resyncs_reconnects_and_notices_go_to_the_events_panel() -> None:
    board = Board(["AAPL", "MSFT"])
    board.apply(LinkMessage("connecting", "ws://x"), T0)
    assert [e.text for e in board.apply(LinkMessage("connected", "ws://x"), T0)] == [
        "connected: ws://x"
    ]
    board.apply(LinkMessage("reconnecting", "HTTP 503"), T0 + 1)
    board.apply(LinkMessage("reconnecting", "connection refused"), T0 + 2)  # still the same
    assert board.status().state == "reconnecting"
    board.apply(LinkMessage("connected", "ws://x"), T0 + 3)
    board.apply(ResyncMessage(("AAPL", "MSFT"), "notice:stream.reconnected"), T0 + 3)
    board.apply(NoticeMessage("the service says: bad", error=True), T0 + 4)
    assert [(e.kind, e.text) for e in board.events] == [
        ("link", "connected: ws://x"),
        ("link", "connection lost: HTTP 503"),
        ("link", "reconnected: ws://x"),
        ("gap", "resync AAPL, MSFT: notice:stream.reconnected"),
        ("error", "the service says: bad"),
    ]
    status = board.status()
    assert (status.state, status.reconnects, status.resyncs) == ("connected", 1, 1)


def test_the_panel_keeps_the_newest_events_only() -> None:
    board = Board(["AAPL"], max_events=3)
    for i in range(5):
        board.apply(NoticeMessage(f"n{i}"), T0 + i)
    assert [e.text for e in board.events] == ["n2", "n3", "n4"]


def test_an_unwatched_symbol_or_a_bad_timestamp_changes_nothing_else() -> None:
    board = Board(["AAPL"])
    board.apply(price("TSLA", "1", "2", 1), T0)
    assert board.quote("TSLA") is None and board.updates == 0
    bad = Quote("AAPL", Decimal(1), Decimal(2), Decimal("1.5"), timestamp="not a time")
    board.apply(PriceMessage(bad), T0)
    (row,) = board.rows(T0)
    assert row.quote == bad and row.age is None
