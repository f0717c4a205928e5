"""The wire record without a socket: counters, last quotes and the copies it hands out."""

from __future__ import annotations

from decimal import Decimal

from apps.simulator.quotes import QuoteGenerator, rfc3339_ns
from apps.simulator.record import WireRecord


def test_generated_ticks_are_counted_and_stamped_one_ns_apart() -> None:
    record = WireRecord()
    ticks, _ = QuoteGenerator(seed=1).next_ticks(("AAPL", "MSFT"), 0, 3)
    record.ticks_sent(ticks, 1_000)
    assert record.quotes_sent == 3
    last = record.last_quotes()
    assert set(last) == {"AAPL", "MSFT"}
    # The third tick (AAPL again) replaced the first and carries ns + 2.
    assert last["AAPL"]["t"] == rfc3339_ns(1_002)
    assert last["MSFT"]["t"] == rfc3339_ns(1_001)
    assert isinstance(last["AAPL"]["bp"], Decimal)


def test_injected_quotes_count_even_without_a_symbol() -> None:
    record = WireRecord()
    record.quotes_injected([{"T": "q", "S": "AAPL", "bp": Decimal("1.00")}, {"T": "q"}])
    assert record.quotes_sent == 2
    assert record.last_quote("AAPL") == {"T": "q", "S": "AAPL", "bp": Decimal("1.00")}
    assert record.last_quote("MSFT") is None


def test_readers_get_copies() -> None:
    record = WireRecord()
    record.quotes_injected([{"S": "AAPL", "bp": Decimal("1.00")}])
    record.last_quotes()["AAPL"]["bp"] = Decimal(0)
    copy = record.last_quote("AAPL")
    assert copy is not None
    copy["bp"] = Decimal(0)
    assert record.last_quote("AAPL") == {"S": "AAPL", "bp": Decimal("1.00")}


def test_auth_attempts_and_client_messages() -> None:
    record = WireRecord()
    record.auth_attempted()
    record.auth_attempted()
    record.client_message({"action": "auth"})
    assert record.auth_attempts == 2
    assert record.client_messages == [{"action": "auth"}]
