"""The pure parts: random walk, price and time formatting, wire encoders vs the reference."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from decimal import Decimal

import msgpack
import msgspec
import pytest

from apps.simulator.encoding import JsonEncoder, MsgpackEncoder, msgpack_timestamp
from apps.simulator.quotes import (
    DEFAULT_UNIVERSE,
    QuoteGenerator,
    QuoteTick,
    format_price,
    parse_rfc3339_ns,
    rfc3339_ns,
    start_price_cents,
    tick_to_dict,
)

# A frame as Alpaca documents it (docs/concepts/websocket-streaming.md).
VECTOR_14_JSON = (
    '[{"T":"q","S":"FAKEPACA","bx":"O","bp":133.85,"bs":4,"ax":"R","ap":135.77,"as":5,'
    '"c":["R"],"z":"A","t":"2024-07-24T07:56:53.639713735Z"}]'
)
VECTOR_14_MSGPACK = bytes.fromhex(
    "918ba154a171a153a846414b4550414341a26278a14fa26270cb4060bb3333333333a2627304a26178a152"
    "a26170cb4060f8a3d70a3d71a2617305a16391a152a17aa141a174d7ff9885071c66a0b3c5"
)
VECTOR_14_NS = 1_721_807_813_639_713_735
FEB_22_2021 = int(datetime(2021, 2, 22, 15, 51, 44, tzinfo=UTC).timestamp()) * 10**9
VECTOR_14_TICK = QuoteTick("FAKEPACA", 133_85, 135_77, 4, 5, "O", "R", "A")
EXACT = msgspec.json.Decoder(float_hook=Decimal)


def test_start_prices_are_deterministic_and_realistic() -> None:
    for symbol in (*DEFAULT_UNIVERSE, "FAKEPACA", "BRK.B"):
        price = start_price_cents(symbol)
        assert price == start_price_cents(symbol)
        assert 20_00 <= price <= 600_00
    assert len({start_price_cents(symbol) for symbol in DEFAULT_UNIVERSE}) == len(DEFAULT_UNIVERSE)
    assert [start_price_cents("AAPL", seed) for seed in range(5)] != [start_price_cents("AAPL")] * 5


def test_walk_is_never_crossed_never_negative_and_moves_by_cents() -> None:
    generator = QuoteGenerator(seed=1)
    symbols = ("AAPL", "MSFT", "PENNY")
    ticks, _ = generator.next_ticks(symbols, 0, 30_000)
    assert [tick.symbol for tick in ticks[:6]] == [*symbols, *symbols]
    for symbol in symbols:
        own = [tick for tick in ticks if tick.symbol == symbol]
        start = start_price_cents(symbol, 1)
        for tick in own:
            assert 1 <= tick.bid_cents < tick.ask_cents
            assert 1 <= tick.ask_cents - tick.bid_cents <= 5
            assert 1 <= tick.bid_size <= 9 and 1 <= tick.ask_size <= 9
            # The walk stays in a band around its start (mean reversion).
            assert 0.7 * start <= tick.bid_cents <= 1.3 * start
        steps = [abs(b.bid_cents - a.bid_cents) for a, b in itertools.pairwise(own)]
        assert max(steps) <= 3 * max(1, start // 100_00)
        assert len({tick.bid_cents for tick in own}) > 20


def test_seeded_generators_repeat_and_cursor_round_robins() -> None:
    first, cursor = QuoteGenerator(seed=42).next_ticks(("A", "B", "C"), 1, 5)
    second, _ = QuoteGenerator(seed=42).next_ticks(("A", "B", "C"), 1, 5)
    assert first == second
    assert [tick.symbol for tick in first] == ["B", "C", "A", "B", "C"]
    assert cursor == 0
    assert QuoteGenerator().next_ticks((), 0, 5) == ([], 0)
    assert QuoteGenerator(seed=3).next_tick("AAPL").symbol == "AAPL"


@pytest.mark.parametrize(
    ("cents", "text"),
    [(18742, "187.42"), (15010, "150.10"), (5, "0.05"), (100, "1.00"), (-7, "-0.07")],
)
def test_format_price(cents: int, text: str) -> None:
    assert format_price(cents) == text


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (VECTOR_14_NS, "2024-07-24T07:56:53.639713735Z"),
        (FEB_22_2021 + 1_335_689_322, "2021-02-22T15:51:45.335689322Z"),
        (FEB_22_2021 + 208_000_000, "2021-02-22T15:51:44.208Z"),
        (FEB_22_2021, "2021-02-22T15:51:44Z"),
    ],
)
def test_rfc3339_trims_trailing_zeros_and_round_trips(ns: int, text: str) -> None:
    assert rfc3339_ns(ns) == text
    assert parse_rfc3339_ns(text) == ns


def test_parse_rfc3339_accepts_offsets() -> None:
    assert parse_rfc3339_ns("2024-07-24T09:56:53.639713735+02:00") == VECTOR_14_NS
    expected = int(datetime(2024, 7, 24, 7, 56, 53, tzinfo=UTC).timestamp()) * 10**9
    assert parse_rfc3339_ns("2024-07-24T07:56:53Z") == expected
    for naive in ("2024-07-24T07:56:53", "2024-07-24T07:56:53.5", "yesterday"):
        with pytest.raises(ValueError, match="offset"):
            parse_rfc3339_ns(naive)


@pytest.mark.parametrize(
    "ns", [VECTOR_14_NS, 10 * 10**9 + 10, 0, FEB_22_2021, 2**34 * 10**9 + 5, -(10**9)]
)
def test_msgpack_timestamp_matches_msgpack_python(ns: int) -> None:
    ours = msgspec.msgpack.encode(msgpack_timestamp(ns))
    assert ours == msgpack.packb(msgpack.Timestamp.from_unix_nano(ns))
    assert msgpack.unpackb(ours).to_unix_nano() == ns


def test_json_encoder_reproduces_the_documented_quote_frame() -> None:
    assert JsonEncoder().encode_ticks([VECTOR_14_TICK], VECTOR_14_NS).decode() == VECTOR_14_JSON


def test_msgpack_encoder_reproduces_the_documented_quote_frame_bytes() -> None:
    assert MsgpackEncoder().encode_ticks([VECTOR_14_TICK], VECTOR_14_NS) == VECTOR_14_MSGPACK
    as_dict = msgspec.json.decode(VECTOR_14_JSON)
    assert MsgpackEncoder().encode(as_dict) == VECTOR_14_MSGPACK


def test_json_frames_carry_two_decimal_numbers_and_distinct_times() -> None:
    ticks, _ = QuoteGenerator(seed=9).next_ticks(DEFAULT_UNIVERSE, 0, 200)
    # 999_999_900 + 200 crosses a second boundary inside the frame.
    for ns in (1_700_000_000_000_000_000, 1_700_000_000_999_999_900):
        frame = EXACT.decode(JsonEncoder().encode_ticks(ticks, ns))
        assert len(frame) == 200
        times = [parse_rfc3339_ns(quote["t"]) for quote in frame]
        assert times == list(range(ns, ns + 200))
        for quote, tick in zip(frame, ticks, strict=True):
            assert next(iter(quote)) == "T"
            assert quote["bp"] == Decimal(format_price(tick.bid_cents))
            assert quote["bp"].as_tuple().exponent == -2
            assert quote == tick_to_dict(tick, parse_rfc3339_ns(quote["t"]))


def test_json_encode_keeps_decimal_text_and_puts_t_first() -> None:
    frame = JsonEncoder().encode(
        [{"S": "AAPL", "bp": Decimal("150.10"), "ap": Decimal("1E+2"), "T": "q"}]
    )
    assert frame == b'[{"T":"q","S":"AAPL","bp":150.10,"ap":1E+2}]'


def test_msgpack_encode_converts_decimals_and_times() -> None:
    frame = MsgpackEncoder().encode(
        [
            {"T": "q", "bp": Decimal("150.10"), "t": datetime(2024, 1, 1, tzinfo=UTC)},
            {"T": "error", "code": 406, "msg": "connection limit exceeded"},
        ]
    )
    quote, error = msgpack.unpackb(frame)
    assert quote["bp"] == 150.1
    assert quote["t"] == msgpack.Timestamp(int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()), 0)
    assert error == {"T": "error", "code": 406, "msg": "connection limit exceeded"}
