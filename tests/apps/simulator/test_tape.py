"""The quote tape: the same bytes as the encoder, a closed walk, and the record it leaves."""

from __future__ import annotations

import itertools
from collections import Counter
from decimal import Decimal

import msgspec
import pytest

from apps.simulator.encoding import JsonEncoder
from apps.simulator.market import build_universe
from apps.simulator.quotes import QuoteGenerator, format_price, rfc3339_ns, start_price_cents
from apps.simulator.record import WireRecord
from apps.simulator.tape import MIN_HALF, QuoteTape, TapeCache

EXACT = msgspec.json.Decoder(float_hook=Decimal)
SYMBOLS = tuple(f"SYM{i:03d}" for i in range(100))
BASE = 1_700_000_000 * 10**9


@pytest.mark.parametrize(
    ("frac", "count"),
    [
        (0, 200),  # a whole second: the first time has no fraction at all
        (123_456_789, 200),
        (9_950, 200),  # crosses a head: the 10,000th ns trims into it
        (120_000_000, 1),
        (999_999_900, 200),  # straddles a second
        (5, 12_000),  # more than one head's run
    ],
)
def test_frames_are_the_encoders_bytes(frac: int, count: int) -> None:
    ticks, _ = QuoteGenerator(seed=7).next_ticks(SYMBOLS, 0, count)
    tape = QuoteTape(SYMBOLS, QuoteGenerator(seed=7))
    data, _, cursor = tape.frame(0, count, BASE + frac)
    assert data == JsonEncoder().encode_ticks(ticks, BASE + frac)
    assert cursor == count


def test_every_symbol_walks_round_and_back_without_jumps() -> None:
    tape = QuoteTape(SYMBOLS, QuoteGenerator(seed=3))
    bids: dict[str, list[Decimal]] = {symbol: [] for symbol in SYMBOLS}
    cursor, ns = 0, BASE
    # One full turn and a bit: the wrap must be seamless too.
    for _ in range(tape.length // 200 + 5):
        data, _, cursor = tape.frame(cursor, 200, ns)
        frame = EXACT.decode(data)
        for quote in frame:
            assert Decimal("0.01") <= quote["ap"] - quote["bp"] <= Decimal("0.05")
            bids[quote["S"]].append(quote["bp"])
        ns += 10**6
    assert tape.length == 2 * MIN_HALF
    for symbol, own in bids.items():
        assert len(own) > 400
        cent = Decimal("0.01")
        step = 3 * max(1, start_price_cents(symbol, 3) // 100_00) * cent
        assert max(abs(b - a) for a, b in itertools.pairwise(own)) <= step
        assert len(set(own)) > 10  # it moves


def test_the_zipf_universe_keeps_its_skew_and_every_symbol() -> None:
    order = build_universe(10_000, skew=1.0, seed=7)
    tape = QuoteTape(order, QuoteGenerator(seed=7))
    assert tape.half == len(order)
    data, _, _ = tape.frame(0, 20_000, BASE)
    counts = Counter(quote["S"] for quote in EXACT.decode(data))
    top = counts.most_common(1)[0][1]
    assert top > 50 * 20_000 / 10_000  # the busiest name trades far above the mean
    tape.frame(tape.half - 10, 20, BASE)  # builds the mirrored half
    assert set(tape.symbols) == set(order) and len(set(order)) == 10_000


def test_the_record_rebuilds_a_tape_frames_quote_exactly() -> None:
    tape = QuoteTape(("AAPL", "MSFT"), QuoteGenerator(seed=1))
    record = WireRecord()
    data, frame, _ = tape.frame(tape.length - 3, 5, BASE + 7)  # wraps round the end
    record.tape_sent(frame)
    assert record.quotes_sent == 5
    sent = EXACT.decode(data)
    assert [q["S"] for q in sent] == frame.symbols() == ["MSFT", "AAPL"] * 2 + ["MSFT"]
    for symbol in ("AAPL", "MSFT"):
        last = [q for q in sent if q["S"] == symbol][-1]
        assert record.last_quote(symbol) == last
    last_msft = record.last_quotes()["MSFT"]
    assert last_msft["t"] == rfc3339_ns(BASE + 7 + 4)
    assert last_msft["bp"].as_tuple().exponent == -2
    assert format_price(int(last_msft["bp"] * 100)) == str(last_msft["bp"])


def test_the_cache_shares_a_walk_orders_tape_and_keeps_a_few() -> None:
    generator = QuoteGenerator(seed=1)
    cache = TapeCache(size=2)
    first = cache.get(("AAPL",), generator)
    assert cache.get(("AAPL",), generator) is first
    cache.get(("MSFT",), generator)
    cache.get(("SPY",), generator)
    assert cache.get(("AAPL",), generator) is not first
    with pytest.raises(ValueError, match="symbol"):
        QuoteTape((), generator)
