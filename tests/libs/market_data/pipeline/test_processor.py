"""The hot path's validation and encoding agree with the spec's models, byte for byte."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from decimal import Decimal

import pytest

from libs.market_data import PriceData, PriceUpdateEvent, QuoteData, RejectReason, check_quote
from libs.market_data.pipeline.processor import QuoteProcessor
from libs.market_data.stream.protocol import Quote


def wire(symbol: str = "AAPL", bp: str = "150.00", ap: str = "150.10", **kw: object) -> Quote:
    fields: dict[str, object] = {
        "S": symbol,
        "bp": Decimal(bp),
        "bs": 3,
        "ap": Decimal(ap),
        "as_": 4,
        "t": "2024-07-24T07:56:53.639713Z",
        "bx": "Q",
        "ax": "P",
    }
    fields.update(kw)
    return Quote(**fields)  # type: ignore[arg-type]


def test_same_json_as_the_pydantic_models() -> None:
    processor = QuoteProcessor(epoch="E1")
    processor.process([wire(t="2024-07-24T07:56:53.5Z")], {"AAPL"})  # seq 1
    (update,) = processor.process([wire()], {"AAPL"})  # seq 2
    model = QuoteData(
        symbol="AAPL",
        bid_price=Decimal("150.00"),
        ask_price=Decimal("150.10"),
        bid_size=3,
        ask_size=4,
        timestamp=datetime.fromisoformat("2024-07-24T07:56:53.639713Z"),
        exchange="Q",
        bid_exchange="Q",
        ask_exchange="P",
    )
    price = PriceData.from_quote(model, seq=2, epoch="E1")
    event = PriceUpdateEvent.from_quote(model, seq=2, epoch="E1")
    assert update[1] == price.model_dump_json().encode()
    assert update[2] == event.model_dump_json().encode()
    # And back: the hot path's JSON reads as the models.
    assert PriceData.model_validate_json(update[1]) == price
    assert PriceUpdateEvent.model_validate_json(update[2]) == event


def _seqs(updates: list[tuple[str, bytes, bytes]]) -> list[tuple[str, int, str]]:
    out = []
    for symbol, price_json, event_json in updates:
        event = json.loads(event_json)
        if price_json:
            price = json.loads(price_json)
            assert (price["seq"], price["epoch"]) == (event["seq"], event["epoch"])
        out.append((symbol, event["seq"], event["epoch"]))
    return out


def test_only_each_symbols_newest_quote_of_a_frame_carries_its_cache_record() -> None:
    # The sink writes only those (docs/architecture.md, "Fewer commands per quote"): the
    # older quotes of a frame carry b"" and ride on the newest's SET.
    processor = QuoteProcessor(epoch="E")
    t0, t1 = "2026-01-02T10:00:00Z", "2026-01-02T10:00:01Z"
    updates = processor.process(
        [wire("AAPL", "1", "2", t=t0), wire("MSFT", t=t0), wire("AAPL", "3", "4", t=t1)],
        {"AAPL", "MSFT"},
    )
    assert [(u[0], bool(u[1])) for u in updates] == [
        ("AAPL", False),
        ("MSFT", True),
        ("AAPL", True),
    ]
    for symbol, price_json, event_json in updates:
        if price_json:
            price, event = json.loads(price_json), json.loads(event_json)
            assert price["symbol"] == symbol
            assert (price["mid"], price["seq"], price["timestamp"]) == (
                event["price"],
                event["seq"],
                event["timestamp"],
            )
    assert json.loads(updates[2][1])["bid"] == "3"


def test_seq_counts_accepted_quotes_per_symbol_and_dropped_ones_take_none() -> None:
    processor = QuoteProcessor(epoch="E")
    t0, t1, t2 = "2026-01-02T10:00:00Z", "2026-01-02T10:00:01Z", "2026-01-02T10:00:02Z"
    first = processor.process(
        [
            wire("AAPL", t=t1),
            wire("MSFT", t=t1),
            wire("AAPL", "2", "1", t=t2),  # crossed: no seq
            wire("AAPL", t=t0),  # stale: no seq
            wire("TSLA", t=t2),  # unsubscribed: no seq
            wire("AAPL", t=t2),
        ],
        {"AAPL", "MSFT"},
    )
    assert _seqs(first) == [("AAPL", 1, "E"), ("MSFT", 1, "E"), ("AAPL", 2, "E")]
    # The next frame carries on; unsubscribing and subscribing again does not restart.
    processor.forget(["AAPL"])
    again = processor.process([wire("AAPL", t=t0), wire("MSFT", t=t2)], {"AAPL", "MSFT"})
    assert _seqs(again) == [("AAPL", 3, "E"), ("MSFT", 2, "E")]
    assert processor.next_seq("AAPL") == 4


def test_each_processor_has_its_own_epoch_unless_given_one() -> None:
    a, b = QuoteProcessor(), QuoteProcessor()
    assert a.epoch != b.epoch
    assert a.epoch[:8].isdigit() and len(a.epoch) == len(b.epoch)
    (update,) = a.process([wire()], {"AAPL"})
    assert json.loads(update[2])["epoch"] == a.epoch
    assert QuoteProcessor(epoch="given").epoch == "given"


def test_nanosecond_timestamps_kept() -> None:
    (update,) = QuoteProcessor().process([wire(t="2024-07-24T07:56:53.639713735Z")], {"AAPL"})
    assert json.loads(update[1])["timestamp"] == "2024-07-24T07:56:53.639713735Z"
    assert json.loads(update[2])["timestamp"] == "2024-07-24T07:56:53.639713735Z"


def test_invalid_and_unsubscribed_quotes_counted_by_reason_order_kept() -> None:
    processor = QuoteProcessor()
    quotes = [
        wire("AAPL", "1.00", "1.01"),
        wire("AAPL", "1.02", "1.01"),  # crossed
        wire("MSFT", "-1", "1"),  # negative price
        wire("MSFT", "1", "2", bs=-3),  # negative size
        wire("TSLA", "1", "2"),  # not subscribed
        wire("MSFT", "2.00", "2.00"),  # locked: valid
        wire("AAPL", "1.03", "1.05"),
    ]
    updates = processor.process(quotes, {"AAPL", "MSFT"})
    mids = [(u[0], json.loads(u[2])["price"]) for u in updates]
    assert mids == [("AAPL", "1.005"), ("MSFT", "2.00"), ("AAPL", "1.04")]
    assert processor.accepted == 3
    assert processor.rejected == {
        RejectReason.CROSSED: 1,
        RejectReason.NEGATIVE_PRICE: 1,
        RejectReason.NEGATIVE_SIZE: 1,
        RejectReason.UNSUBSCRIBED: 1,
    }


def test_timestamps_that_are_not_rfc3339_are_malformed() -> None:
    processor = QuoteProcessor()
    quotes = [wire(t="24/07/2024 07:56:53.000000"), wire(t="2024-07-24 07:56:53.639713Z")]
    assert processor.process(quotes, {"AAPL"}) == []
    assert processor.rejected == {RejectReason.MALFORMED: 2}


def test_nan_is_malformed_even_when_the_callers_context_does_not_trap() -> None:
    import decimal

    with decimal.localcontext() as context:
        context.traps[decimal.InvalidOperation] = False
        processor = QuoteProcessor()
        assert processor.process([wire(bp="NaN"), wire(ap="NaN")], {"AAPL"}) == []
    assert processor.rejected == {RejectReason.MALFORMED: 2}


def test_a_mid_price_that_would_need_rounding_is_refused() -> None:
    processor = QuoteProcessor()
    quotes = [
        wire(bp="1E-1000030", ap="3E-1000030"),  # below the smallest exponent: would be 0
        wire(bp="1.000000000000000000000000001", ap="1.000000000000000000000000002"),
    ]
    assert processor.process(quotes, {"AAPL"}) == []
    assert processor.rejected == {RejectReason.MALFORMED: 2}


def test_huge_and_tiny_prices_stay_exact() -> None:
    quotes = [wire("A", "0.0001", "0.0003"), wire("A", "987654321.12", "987654321.14")]
    mids = [json.loads(u[2])["price"] for u in QuoteProcessor().process(quotes, {"A"})]
    assert mids == ["0.0002", "987654321.13"]


def _mids(updates: list[tuple[str, bytes, bytes]]) -> list[str]:
    return [json.loads(u[2])["price"] for u in updates]


def test_an_older_quote_is_dropped_as_stale_in_the_same_frame_and_the_next() -> None:
    processor = QuoteProcessor()
    newer = wire(bp="10", ap="10", t="2026-01-02T10:00:01Z")
    older = wire(bp="20", ap="20", t="2026-01-02T10:00:00Z")
    assert _mids(processor.process([newer, older], {"AAPL"})) == ["10"]
    assert _mids(processor.process([older], {"AAPL"})) == []
    assert processor.rejected[RejectReason.STALE] == 2
    # Another symbol has its own clock.
    assert _mids(processor.process([wire("MSFT", bp="1", ap="1", t=older.t)], {"MSFT"})) == ["1"]


def test_instants_are_compared_not_strings() -> None:
    # Alpaca trims trailing zeros: as strings "...:00Z" sorts after "...:00.5Z".
    processor = QuoteProcessor()
    first = wire(bp="1", ap="1", t="2026-01-02T10:00:00Z")
    later = wire(bp="2", ap="2", t="2026-01-02T10:00:00.5Z")
    nanos = wire(bp="3", ap="3", t="2026-01-02T10:00:00.500000001Z")
    earlier = wire(bp="4", ap="4", t="2026-01-02T10:00:00.05Z")
    assert _mids(processor.process([first, later, nanos, earlier], {"AAPL"})) == ["1", "2", "3"]
    # An offset is the same instant as its UTC form.
    same = wire(bp="5", ap="5", t="2026-01-02T12:00:00.500000001+02:00")
    assert _mids(processor.process([same], {"AAPL"})) == ["5"]


def test_an_equal_timestamp_is_accepted_the_later_arrival_wins() -> None:
    processor = QuoteProcessor()
    t = "2026-01-02T10:00:00.123Z"
    updates = processor.process([wire(bp="1", ap="1", t=t), wire(bp="2", ap="2", t=t)], {"AAPL"})
    assert _mids(updates) == ["1", "2"]
    assert processor.rejected[RejectReason.STALE] == 0


def test_forgetting_a_symbol_forgets_its_clock() -> None:
    processor = QuoteProcessor()
    processor.process([wire(t="2026-01-02T10:00:01Z")], {"AAPL"})
    processor.forget(["AAPL"])
    assert _mids(processor.process([wire(bp="7", ap="7", t="2026-01-02T10:00:00Z")], {"AAPL"})) == [
        "7"
    ]


def test_stalest_are_the_oldest_quotes_of_all_tracked_symbols_oldest_first() -> None:
    processor = QuoteProcessor()
    # Distinct times in a shuffled order, then ties (a frame's symbols share one) at the
    # 9th oldest, across the cut: the answer is the brute-force one, ties in insertion order.
    processor.last_accepted.update(
        {f"S{i:04d}": float(1000 + (i * 7919) % 5000) for i in range(5000)}
    )
    processor.last_accepted.update({f"T{i}": 1008.0 for i in range(3)})
    now = 2000.0
    expected = sorted(processor.last_accepted.items(), key=lambda item: item[1])[:10]
    stalest = processor.stalest(now, 10)
    assert [age for _, age in stalest] == [now - at for _, at in expected]
    assert [symbol for symbol, _ in stalest] == [symbol for symbol, _ in expected]
    assert all(processor.last_accepted[s] == now - age for s, age in stalest)
    assert processor.stalest(now, 0) == []
    assert len(processor.stalest(now, 10_000)) == 5003


# Prices and sizes on every side of check_quote's rules, in pairs that make each rule the
# first to fail (its order decides the reason when several would).
_PRICES = ["0", "1", "2", "-1", "NaN", "sNaN", "Infinity", "-Infinity", "1E+9", "999999999.99"]
_SIZES = [0, 3, -1]


@pytest.mark.parametrize("bid", _PRICES)
@pytest.mark.parametrize("ask", _PRICES)
def test_the_inlined_rules_give_check_quotes_reason_for_every_quote(bid: str, ask: str) -> None:
    # The processor inlines check_quote (a call per quote cost 5-10% of its time): it must
    # drop exactly what check_quote refuses, counted under the same reason.
    for bid_size, ask_size in itertools.product(_SIZES, _SIZES):
        expected = check_quote(Decimal(bid), Decimal(ask), bid_size, ask_size)
        processor = QuoteProcessor()
        quote = wire(bp=bid, ap=ask, bs=bid_size, as_=ask_size)
        updates = processor.process([quote], {"AAPL"})
        if expected is None:
            assert len(updates) == 1, (bid, ask, bid_size, ask_size)
        else:
            assert processor.rejected == {expected: 1}, (bid, ask, bid_size, ask_size)
