"""The frame decoder and the quote processor under hostile input (hypothesis).

Properties: ``decode_frame`` never raises; every element of a frame is either a
decoded message or counted in ``malformed`` (a frame that is not a JSON array at all
counts as one); the valid quotes of a mixed batch all come through, in order and with
exactly the decimals of the wire text; ``QuoteProcessor.process`` never raises and
accepts exactly the valid quotes, each cached with exact decimal strings,
``0 <= bid <= ask < MAX_PRICE``. The last test feeds such frames to a real stream
through the simulator and checks that it stays connected and counts them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal, Inexact, InvalidOperation, localcontext
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.simulator import AlpacaSimulator
from libs.market_data import AlpacaMarketDataStream, PriceData, PriceUpdateEvent
from libs.market_data.pipeline.processor import QuoteProcessor
from libs.market_data.stream.protocol import (
    DecodedFrame,
    ErrorMessage,
    Quote,
    SubscriptionAck,
    SuccessMessage,
    decode_frame,
)
from libs.market_data.types import MAX_PRICE, RejectReason
from libs.redis_client import EventPublisher, RedisClient, RedisConnectionParams
from libs.telemetry import instant_key
from tests.helpers import eventually, quote

# Fast, bounded and stable in CI: no per-example deadline (a cold first example pays
# for imports), moderate counts so each fuzzer stays well under 20 s.
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SUBSCRIBED = ("AAPL", "MSFT", "BRK.B", "BTC/USD")
_MAX_SIZE = 2**63 - 1
_DEFAULT_CONTEXT = Context()


# -- what a generated element is expected to decode to ------------------------------------


@dataclass(frozen=True)
class Expected:
    """The quote a valid element must decode to, from the wire text (not via msgspec)."""

    symbol: str
    bid: Decimal
    ask: Decimal
    bid_size: int
    ask_size: int
    t: str
    bx: str | None
    ax: str | None


Kind = Literal["quote", "broken", "control", "junk"]


@dataclass(frozen=True)
class Element:
    """One array element of a frame: its JSON text and what it must become."""

    text: str
    kind: Kind
    expected: Expected | None = None


def same_decimal(got: Decimal, want: Decimal) -> bool:
    """Same value *and* same digits/exponent (``150.10`` is not ``150.1``).

    The sign of a zero is ignored: msgspec reads the JSON number ``-0`` as ``0``.
    """
    if want.is_nan() or got.is_nan():
        return got.is_nan() and want.is_nan() and got.is_snan() == want.is_snan()
    if want.is_infinite() or got.is_infinite():
        return got == want
    return got.as_tuple()[1:] == want.as_tuple()[1:] and got == want


def _plain_decimal_text(units: int, places: int) -> str:
    if not places:
        return str(units)
    whole, frac = divmod(units, 10**places)
    return f"{whole}.{frac:0{places}d}"


# Prices as a feed might send them, then edge cases, then absurd ones.
_realistic_price = st.builds(_plain_decimal_text, st.integers(0, 10**12), st.integers(0, 9))
_any_decimal = st.decimals(allow_nan=False, allow_infinity=False).map(str)
_extreme_price = st.sampled_from(
    [
        "0",
        "-0",
        "0.0000",
        "-0.01",
        "1e400",
        "-1e400",
        "1E+999999",
        "1e-400",
        "1" + "0" * 400,
        str(2**70),
        "999999999.999999999",
        "1000000000",
        "1e9",
        "999999999.9999999999999999999999999999999",
        "1.00000000000000000000000000000000000001",
    ]
)
_number_text = st.one_of(_realistic_price, _any_decimal, _extreme_price)
# Strings msgspec reads as Decimal, NaN and the infinities among them.
_special_price = st.sampled_from(
    ["NaN", "nan", "-NaN", "sNaN", "Infinity", "-Infinity", "inf", "-inf", "1e400", "0.5"]
)


@st.composite
def price_tokens(draw: st.DrawFn) -> tuple[str, Decimal]:
    """A price as its JSON token and the Decimal its text means."""
    kind = draw(st.sampled_from(["number", "number", "number", "string", "special"]))
    if kind == "special":
        text = draw(_special_price)
        return json.dumps(text), Decimal(text)
    text = draw(_number_text)
    token = text if kind == "number" else json.dumps(text)
    return token, Decimal(text)


_sizes = st.one_of(st.integers(0, 10_000), st.integers(-(2**70), _MAX_SIZE))


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    """RFC 3339 in UTC with 0-9 fraction digits, as Alpaca sends (20-35 characters)."""
    moment = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(
        seconds=draw(st.integers(0, 10 * 365 * 86400))
    )
    fraction = draw(st.text("0123456789", max_size=9))
    return f"{moment:%Y-%m-%dT%H:%M:%S}{'.' if fraction else ''}{fraction}Z"


# A timestamp of a legal length whose separators are wrong: the processor drops it.
_bad_separator_timestamps = st.sampled_from(
    ["2024/07/24 07:56:53.1Z", "20240724T075653.1234Z", "xxxxxxxxxxxxxxxxxxxxxx"]
)
_symbols = st.one_of(
    st.sampled_from(SUBSCRIBED),
    st.sampled_from(["TSLA", "aapl", "", " AAPL", "A" * 100]),
    st.text(max_size=12),
)
_exchanges = st.one_of(st.none(), st.sampled_from(["Q", "P", "V", ""]), st.text(max_size=3))


@st.composite
def quote_fields(draw: st.DrawFn) -> tuple[dict[str, str], Expected]:
    """A decodable quote: field name -> JSON token, in a random order, and its meaning."""
    symbol = draw(_symbols)
    bid_token, bid = draw(price_tokens())
    ask_token, ask = draw(price_tokens())
    bid_size = draw(_sizes)
    ask_size = draw(_sizes)
    t = draw(st.one_of(timestamps(), timestamps(), _bad_separator_timestamps))
    bx = draw(_exchanges)
    ax = draw(_exchanges)
    fields = {
        "T": '"q"',
        "S": json.dumps(symbol),
        "bp": bid_token,
        "bs": str(bid_size),
        "ap": ask_token,
        "as": str(ask_size),
        "t": json.dumps(t),
    }
    if bx is not None or draw(st.booleans()):
        fields["bx"] = json.dumps(bx)
    if ax is not None or draw(st.booleans()):
        fields["ax"] = json.dumps(ax)
    if draw(st.booleans()):  # keys we do not process are ignored
        fields["c"] = '["R"]'
        fields["z"] = '"A"'
    shuffled = {key: fields[key] for key in draw(st.permutations(list(fields)))}
    return shuffled, Expected(symbol, bid, ask, bid_size, ask_size, t, bx, ax)


def _object_text(fields: dict[str, str]) -> str:
    return "{" + ",".join(f"{json.dumps(key)}:{value}" for key, value in fields.items()) + "}"


@st.composite
def valid_quotes(draw: st.DrawFn) -> Element:
    fields, expected = draw(quote_fields())
    return Element(_object_text(fields), "quote", expected)


# Each of these makes a quote undecodable, whatever the rest holds.
_WRONG_TYPES: dict[str, list[str]] = {
    "S": ["5", "null", "[]", "{}", "true"],
    "bp": ["true", "null", "[]", "{}", '"abc"', '""', '"0x10"', '"1,5"'],
    "ap": ["false", "null", "[1]", '{"v":1}', '"price"', '" "'],
    "bs": ["1.5", "1e2", '"5"', "true", "null", str(_MAX_SIZE + 1), str(2**70)],
    "as": ["2.0", '"1"', "[]", str(2**64), str(2**70)],
    "t": ['"2024-01-01"', json.dumps("2024-01-01T00:00:00." + "1" * 20 + "Z"), "5", "null"],
    "bx": ["5", "[]", "true"],
    "T": ['"zz"', '"Q"', "5", "null", '""'],
}
# Not "T": a frame made only of quotes is decoded as list[Quote], where msgspec checks
# a tag that is present but does not require one, so a tag-less quote passes there
# (and is malformed in a mixed frame). Harmless, and not what this property is about.
_REQUIRED = ("S", "bp", "bs", "ap", "as", "t")


@st.composite
def broken_quotes(draw: st.DrawFn) -> Element:
    """A quote with one required field missing or one field of a wrong type."""
    fields, _ = draw(quote_fields())
    if draw(st.booleans()):
        del fields[draw(st.sampled_from(_REQUIRED))]
    else:
        name = draw(st.sampled_from(sorted(_WRONG_TYPES)))
        fields[name] = draw(st.sampled_from(_WRONG_TYPES[name]))
    return Element(_object_text(fields), "broken")


_CONTROLS = [
    '{"T":"success","msg":"connected"}',
    '{"T":"error","code":406,"msg":"connection limit exceeded"}',
    '{"T":"subscription","trades":[],"quotes":["AAPL"],"bars":[]}',
]
controls = st.sampled_from(_CONTROLS).map(lambda text: Element(text, "control"))

# Standard JSON values of any shape (no NaN tokens, no lone surrogates).
_json_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _json_text,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.one_of(_json_text, st.sampled_from(["T", "S", "bp", "ap"])), children, max_size=4
        )
    ),
    max_leaves=12,
)
_other_messages = st.sampled_from(
    [
        '{"T":"t","S":"AAPL","i":628,"x":"K","p":162.92,"s":3,"t":"2023-04-06T11:54:26Z"}',
        '{"T":"b","S":"AAPL","o":1,"h":2,"l":0.5,"c":1.5,"v":100,"t":"2024-07-24T07:56:00Z"}',
        '{"T":"s","S":"AAPL","sc":"H","sm":"Trading Halt"}',
        '{"T":"t"}',
        '{"T":"t","S":5}',
        '{"T":"unknown","S":"AAPL"}',
        '{"T":"q"}',
    ]
)
# Anything that is not a valid quote: other market data, wrong shapes, broken objects.
junk = st.one_of(
    json_values.map(json.dumps),
    _other_messages,
).map(lambda text: Element(text, "junk"))

elements = st.one_of(valid_quotes(), valid_quotes(), broken_quotes(), controls, junk)


def frame_of(items: list[Element]) -> bytes:
    return ("[" + ",".join(item.text for item in items) + "]").encode()


def accounted(decoded: DecodedFrame) -> int:
    return (
        len(decoded.quotes)
        + len(decoded.trades)
        + len(decoded.bars)
        + len(decoded.controls)
        + decoded.other
        + decoded.malformed
    )


def assert_quote_is(got: Quote, want: Expected) -> None:
    assert (got.S, got.bs, got.as_) == (want.symbol, want.bid_size, want.ask_size)
    assert same_decimal(got.bp, want.bid), (got.bp, want.bid)
    assert same_decimal(got.ap, want.ask), (got.ap, want.ask)
    assert (got.t, got.bx, got.ax) == (want.t, want.bx, want.ax)


# -- the decoder ------------------------------------------------------------------------------


@FUZZ
@given(st.lists(elements, max_size=25))
def test_mixed_batch_every_element_accounted_for_and_valid_quotes_recovered(
    items: list[Element],
) -> None:
    decoded = decode_frame(frame_of(items))
    assert accounted(decoded) == len(items)
    wanted = [item.expected for item in items if item.expected is not None]
    assert len(decoded.quotes) == len(wanted)
    for got, want in zip(decoded.quotes, wanted, strict=True):
        assert_quote_is(got, want)
    assert len(decoded.controls) == sum(item.kind == "control" for item in items)
    assert decoded.malformed >= sum(item.kind == "broken" for item in items)
    assert len(decoded.errors) <= 3  # the first few reasons, not one per bad element
    for control in decoded.controls:
        assert isinstance(control, SuccessMessage | ErrorMessage | SubscriptionAck)


@FUZZ
@given(st.binary(max_size=2048))
def test_random_bytes_never_raise(data: bytes) -> None:
    decoded = decode_frame(data)
    assert isinstance(decoded, DecodedFrame)
    assert decoded.malformed >= 0
    if decoded.malformed == 0:
        assert data.strip().startswith(b"[")


@FUZZ
@given(st.text(max_size=512))
def test_random_text_never_raises_even_with_lone_surrogates(text: str) -> None:
    # websockets hands us bytes, but the decoder's contract covers str too.
    decoded = decode_frame(text)
    assert isinstance(decoded, DecodedFrame)


@FUZZ
@given(json_values)
def test_any_json_value_is_one_malformed_frame_unless_it_is_an_array(value: Any) -> None:
    decoded = decode_frame(json.dumps(value).encode())
    if isinstance(value, list):
        assert accounted(decoded) == len(value)
        assert not decoded.quotes  # nothing here has the shape of a quote
    else:
        assert decoded.malformed == 1
        assert accounted(decoded) == 1


@FUZZ
@given(
    st.lists(valid_quotes(), min_size=1, max_size=5),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "nan", "1.", ".5", "01", "+1", "0x1F"]),
    st.integers(0, 4),
)
def test_non_standard_number_tokens_drop_the_frame_as_one_malformed(
    items: list[Element], token: str, where: int
) -> None:
    # Not JSON at all: the frame cannot be split into elements, so it is one malformed.
    victim = items[min(where, len(items) - 1)]
    broken = Element(victim.text.replace('"bp":', f'"bp":{token},"_x":', 1), "broken")
    frame = frame_of([*items[:where], broken, *items[where + 1 :]])
    decoded = decode_frame(frame)
    assert (decoded.malformed, decoded.quotes) == (1, [])
    assert decoded.errors and decoded.errors[0].startswith("frame:")


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b" ",
        b"null",
        b"42",
        b'"[]"',
        b'{"T":"q","S":"AAPL","bp":1,"bs":1,"ap":1,"as":1,"t":"2024-07-24T07:56:53Z"}',
        b'{"T":"success","msg":"connected"}',
        b"[",
        b"]",
        b"[1,]",
        b"[,]",
        b"\xff\xfe\xfd",
        b'["\xc3\x28"]',
        b'["\\ud800"]',
        b"\x00" * 64,
    ],
    ids=lambda frame: repr(frame[:24]),
)
def test_non_array_and_broken_frames_count_once(frame: bytes) -> None:
    decoded = decode_frame(frame)
    assert (decoded.malformed, decoded.quotes, decoded.controls, decoded.other) == (1, [], [], 0)
    assert decoded.errors


def test_empty_array_is_nothing() -> None:
    assert accounted(decode_frame(b"[]")) == 0


_QUOTE = b'{"T":"q","S":"AAPL","bp":1.5,"bs":1,"ap":1.6,"as":1,"t":"2024-07-24T07:56:53Z"}'


@pytest.mark.parametrize("depth", [1, 10, 100, 200])
def test_nested_arrays_next_to_a_quote_cost_only_themselves(depth: int) -> None:
    nested = b"[" * depth + b"]" * depth
    decoded = decode_frame(b"[" + _QUOTE + b"," + nested + b"," + _QUOTE + b"]")
    assert len(decoded.quotes) == 2
    assert decoded.malformed == 1


@FUZZ
@given(st.integers(2, 50_000), st.booleans())
def test_nesting_of_any_depth_never_raises(depth: int, with_quote: bool) -> None:
    # Deeper than the interpreter's recursion limit, msgspec raises RecursionError; the
    # decoder turns that into one malformed frame instead of killing the read loop.
    nested = b"[" * depth + b"]" * depth
    frame = b"[" + _QUOTE + b"," + nested + b"]" if with_quote else nested
    decoded = decode_frame(frame)
    assert decoded.malformed >= 1
    assert accounted(decoded) <= 2


def test_oversized_frames() -> None:
    # A few MB of garbage: one malformed frame.
    decoded = decode_frame(b'["' + b"x" * (4 << 20))
    assert (decoded.malformed, decoded.quotes) == (1, [])
    # A 3 MB batch of 25 000 quotes with one bad element in the middle: the rest survive.
    good = [_QUOTE] * 25_000
    good[12_500] = b'{"T":"q","S":"AAPL","bp":"x"}'
    decoded = decode_frame(b"[" + b",".join(good) + b"]")
    assert len(decoded.quotes) == 24_999
    assert decoded.malformed == 1
    # One 8 MB string where a symbol goes: decoded, and dropped later as unsubscribed.
    prefix = b'{"T":"q","S":"AAPL'
    assert _QUOTE.startswith(prefix)
    huge_symbol = b"[" + prefix + b"A" * (8 << 20) + _QUOTE[len(prefix) :] + b"]"
    decoded = decode_frame(huge_symbol)
    assert len(decoded.quotes) == 1
    processor = QuoteProcessor()
    assert processor.process(decoded.quotes, SUBSCRIBED) == []
    assert processor.rejected == {RejectReason.UNSUBSCRIBED: 1}


# -- the processor --------------------------------------------------------------------------


def should_accept(want: Expected, subscribed: frozenset[str]) -> bool:
    """Independent oracle of the validation rules (``check_quote`` plus symbol and time)."""
    if want.symbol not in subscribed or want.t[4:17:3] != "--T::":
        return False
    bid, ask = want.bid, want.ask
    if not (bid.is_finite() and ask.is_finite()):
        return False
    if not (0 <= bid <= ask < MAX_PRICE and want.bid_size >= 0 and want.ask_size >= 0):
        return False
    # The mid price must be exact in 28 digits: a mid that would be rounded is refused.
    exact = Context(traps=[])
    exact.divide(exact.add(bid, ask), Decimal(2))
    return not exact.flags[Inexact]


def exact_decimal_text(text: Any, want: Decimal) -> bool:
    """A JSON string holding exactly ``want`` (value, digits and exponent)."""
    if not isinstance(text, str):
        return False
    try:
        got = Decimal(text)
    except InvalidOperation:
        return False
    return same_decimal(got, want) and text == str(got)


@FUZZ
@given(
    st.lists(
        st.one_of(valid_quotes(), valid_quotes(), valid_quotes(), broken_quotes(), junk),
        max_size=25,
    ),
    st.sets(st.sampled_from(SUBSCRIBED)),
)
def test_processor_accepts_exactly_the_valid_quotes_with_exact_decimals(
    items: list[Element], subscribed_set: set[str]
) -> None:
    subscribed = frozenset(subscribed_set)
    decoded = decode_frame(frame_of(items))
    processor = QuoteProcessor()
    updates = processor.process(decoded.quotes, subscribed)

    assert processor.accepted + sum(processor.rejected.values()) == len(decoded.quotes)
    wanted: list[Expected] = []
    last: dict[str, str] = {}  # per-symbol order (docs/architecture.md): older is stale
    for item in items:
        want = item.expected
        if want is None or not should_accept(want, subscribed):
            continue
        try:
            key = instant_key(want.t)
        except ValueError:
            key = ""  # unreadable: accepted, never ordered
        if key and want.symbol in last and key < last[want.symbol]:
            continue
        if key:
            last[want.symbol] = key
        wanted.append(want)
    assert [symbol for symbol, _, _ in updates] == [want.symbol for want in wanted]
    newest = {symbol: index for index, (symbol, _, _) in enumerate(updates)}
    seqs: dict[str, int] = {}
    for index, ((symbol, price_json, event_json), want) in enumerate(
        zip(updates, wanted, strict=True)
    ):
        seqs[symbol] = seq = seqs.get(symbol, 0) + 1
        if newest[symbol] != index:
            # Only a symbol's newest quote of the frame carries a cache record (docs/
            # architecture.md, "Fewer commands per quote"); every quote has its event.
            assert price_json == b""
            event = json.loads(event_json)
            assert (event["symbol"], event["seq"], event["timestamp"]) == (symbol, seq, want.t)
            assert exact_decimal_text(event["bid"], want.bid), (event["bid"], want.bid)
            assert exact_decimal_text(event["ask"], want.ask), (event["ask"], want.ask)
            continue
        record = json.loads(price_json)
        assert exact_decimal_text(record["bid"], want.bid), (record["bid"], want.bid)
        assert exact_decimal_text(record["ask"], want.ask), (record["ask"], want.ask)
        bid, ask = Decimal(record["bid"]), Decimal(record["ask"])
        assert 0 <= bid <= ask < MAX_PRICE
        with localcontext(_DEFAULT_CONTEXT):
            assert Decimal(record["mid"]) == (bid + ask) / 2
        assert (record["symbol"], record["bid_size"], record["ask_size"]) == (
            symbol,
            want.bid_size,
            want.ask_size,
        )
        assert record["timestamp"] == want.t
        event = json.loads(event_json)
        assert (record["seq"], record["epoch"]) == (seq, processor.epoch)
        assert event == {
            "event_type": "price.updated",
            "symbol": symbol,
            "price": record["mid"],
            "bid": record["bid"],
            "ask": record["ask"],
            "bid_size": want.bid_size,
            "ask_size": want.ask_size,
            "seq": seq,
            "epoch": processor.epoch,
            "timestamp": want.t,
        }
        # The spec's models read both payloads back without loss.
        assert PriceData.model_validate_json(price_json).bid == bid
        assert PriceUpdateEvent.model_validate_json(event_json).price == Decimal(record["mid"])


@pytest.mark.parametrize(
    ("bid", "ask", "reason"),
    [
        ('"NaN"', "1", RejectReason.MALFORMED),
        ("1", '"NaN"', RejectReason.MALFORMED),
        ('"sNaN"', '"sNaN"', RejectReason.MALFORMED),
        ('"Infinity"', '"Infinity"', RejectReason.MALFORMED),
        ('"-Infinity"', "1", RejectReason.NEGATIVE_PRICE),
        ("1", "1e400", RejectReason.MALFORMED),
        ("1e400", "1e400", RejectReason.MALFORMED),
        ("1", "1000000000", RejectReason.MALFORMED),
        ("-1e400", "1", RejectReason.NEGATIVE_PRICE),
        ("2", "1", RejectReason.CROSSED),
    ],
)
def test_nan_infinity_and_huge_prices_are_rejected_with_a_reason(
    bid: str, ask: str, reason: RejectReason
) -> None:
    frame = f'[{{"T":"q","S":"AAPL","bp":{bid},"bs":1,"ap":{ask},"as":1,'
    frame += '"t":"2024-07-24T07:56:53Z"}]'
    processor = QuoteProcessor()
    assert processor.process(decode_frame(frame.encode()).quotes, SUBSCRIBED) == []
    assert processor.rejected == {reason: 1}


# -- a real stream fed hostile frames -----------------------------------------------------------


def hostile_frames() -> list[str | bytes]:
    """Frames a broken or hostile peer might send; each must be counted, none may hurt."""
    quote_text = '{"T":"q","S":"AAPL","bp":%s,"bs":%s,"ap":%s,"as":1,"t":"2024-07-24T07:56:53Z"}'
    return [
        "this is not json",
        b"\xff\xfe\x00 binary garbage",
        '{"T":"q","S":"AAPL"}',  # not an array
        "[" * 5000 + "]" * 5000,  # deeper than the recursion limit
        "[" + quote_text % ("NaN", "1", "2") + "]",  # non-standard token
        "[" + quote_text % ('"NaN"', "1", '"Infinity"') + "]",
        "[" + quote_text % ("1e400", "1", "1e400") + "]",
        "[" + quote_text % ("1", str(2**70), "2") + "]",
        '[{"T":"zz","S":"AAPL"},{"T":"q"},5,null,"q",[[[]]]]',
        '["' + "x" * (3 << 20) + '"]',  # 3 MB
        "[]",
    ]


@pytest.fixture
async def stream(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> AsyncIterator[AlpacaMarketDataStream]:
    client = RedisClient(params=redis_params)
    made = AlpacaMarketDataStream(
        "sim-key",
        "sim-secret",
        client,
        EventPublisher(client=client),
        url=simulator.url(),
        reconnect_base_delay=0.05,
        reconnect_max_delay=0.2,
        step_timeout=2.0,
        compression=None,
    )
    task = asyncio.create_task(made.start())
    try:
        yield made
    finally:
        await made.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await client.close()


@pytest.mark.timeout(30)
async def test_real_stream_survives_hostile_frames_and_counts_them(
    stream: AlpacaMarketDataStream,
    simulator: AlpacaSimulator,
    redis_client: RedisClient,
) -> None:
    await stream.subscribe_symbols(["AAPL"])
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL"}, what="subscribed")
    frames = hostile_frames()
    expected_malformed = 0
    for n, frame in enumerate(frames, start=1):
        raw = frame.encode() if isinstance(frame, str) else frame
        expected_malformed += decode_frame(raw).malformed
        await simulator.send_raw(frame)
        # A valid quote after each: it must land, so the stream is still reading.
        bid = f"{100 + n}.00"
        await simulator.send_quotes([quote("AAPL", bid, f"{100 + n}.02")])

        async def landed(want: str = f"{100 + n}.01") -> bool:
            raw_price = await redis_client.get("price:AAPL")
            return raw_price is not None and json.loads(raw_price)["mid"] == want

        deadline = asyncio.get_running_loop().time() + 5
        while not await landed():
            assert asyncio.get_running_loop().time() < deadline, f"no quote after frame {n}"
            await asyncio.sleep(0.01)
    stats = stream.get_connection_stats()
    assert expected_malformed >= 9
    assert stats["malformed_messages"] == expected_malformed
    assert stats["quotes_rejected"] == {"malformed": 2}  # NaN/Infinity and 1e400
    assert stats["quotes_accepted"] == len(frames)
    assert stream.is_connected()
    assert stats["connections_opened"] == 1
    assert simulator.total_connections == 1
