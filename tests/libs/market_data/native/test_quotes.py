"""The native quote path gives what the Python path gives, byte for byte.

Every frame is run through both: ``decode_frame`` + ``QuoteProcessor.process`` (the
reference) and ``decode_stock_frame`` + ``process_block`` (the C path, when it takes the
frame). Updates, drop counts, seqs, instants and last-seen symbols must all agree, over
several frames in a row so seq and staleness carry across frames. A frame outside the C
path's common case must come back as the Python path's, with nothing changed.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, example, given, settings

from apps.bench.hotpath import frames
from apps.simulator.market import build_universe
from libs.market_data import native
from libs.market_data.pipeline.packing import FramePacker
from libs.market_data.pipeline.processor import PriceUpdate, QuoteProcessor
from libs.market_data.stream.protocol import DecodedFrame, decode_frame, decode_stock_frame

if not native.available():  # pragma: no cover - a broken setup, never a skip
    raise RuntimeError("the native quote path is not built: run `make setup` (needs cc)")

_STAMPS = [
    "2026-11-28T15:22:01.123456789Z",  # the fixed-width form
    "2026-11-28T15:22:01.123456788Z",
    "2026-11-28T15:22:01.5Z",  # trimmed, as Alpaca trims
    "2026-11-28T15:22:01Z",
    "2026-11-28T16:22:01.1+01:00",  # an offset
    "2026-11-28T15:22:0x.123456789Z",  # the right shape, not a time
    "2026-11-28 15:22:01.123456789Z",  # the wrong shape: malformed
    "2026-11-28T15:22:01.1234567890123Z",  # too many digits for instant_key
]
_PRICES = [
    "0", "0.00", "1", "150", "150.10", "150.1", "187.52", "187.525", "0.5", "0.05",
    "0.000001", "0.0000015", "0.0000001", "999999999.99", "1000000000", "1000000000.5",
    "123456789012345678", "12345678901234567.8", "0.12345678901234567", "1234567890123456789",
    "-1", "-0", "1e2", "1.5E-3", '"150.10"', "null",
]  # fmt: skip
_SIZES = ["0", "1", "3", "100", "-1", "-0", "999999999999999999", "9999999999999999999", "1.5"]
_SYMBOLS = ["AAPL", "MSFT", "BRK.B", "", 'A\\"B', "ÄPL", "X" * 70]


def _element(
    symbol: str,
    bp: str,
    ap: str,
    *,
    bs: str = "1",
    as_: str = "1",
    stamp: str = _STAMPS[0],
    extra: str = "",
    tag: str = "q",
    order: tuple[int, ...] = tuple(range(9)),
) -> str:
    fields = [
        f'"T":"{tag}"', f'"S":"{symbol}"', '"bx":"V"', f'"bp":{bp}', f'"bs":{bs}', '"ax":"Q"',
        f'"ap":{ap}', f'"as":{as_}{extra}', f'"t":"{stamp}"',
    ]  # fmt: skip
    return "{" + ",".join(fields[i] for i in order) + "}"


_EXTRAS = st.sampled_from(
    ['', ',"c":["R"],"z":"C"', ',"c":[],"z":null,"r":{"a":[1,2.5e3,true]}', ',"bx":null',
     ',"ax":"QQ"', ',"bp":1', ',"n":"\\\\u00e9"', ',"c":["\\u00e9"]']
)  # fmt: skip

_QUOTES = st.builds(
    _element,
    st.sampled_from(_SYMBOLS[:3]) | st.sampled_from(_SYMBOLS),
    st.sampled_from(_PRICES[:10]) | st.sampled_from(_PRICES),
    st.sampled_from(_PRICES[:10]) | st.sampled_from(_PRICES),
    bs=st.sampled_from(_SIZES[:4]) | st.sampled_from(_SIZES),
    as_=st.sampled_from(_SIZES[:4]) | st.sampled_from(_SIZES),
    stamp=st.sampled_from(_STAMPS[:2]) | st.sampled_from(_STAMPS),
    extra=_EXTRAS,
    tag=st.sampled_from(["q", "q", "q", "t"]),
    order=st.just(tuple(range(9))) | st.permutations(range(9)).map(tuple),  # any key order
)
# Elements that are not quotes, as the feed mixes them in: handed to the Python decoder.
_OTHERS = st.sampled_from(
    [
        '{"T":"t","S":"AAPL","i":7,"x":"V","p":187.5,"s":100,"t":"'
        + _STAMPS[0]
        + '","c":["@"],"z":"C"}',
        '{"S":"MSFT","T":"t","p":-1,"s":1,"t":"' + _STAMPS[2] + '"}',
        '{"T":"b","S":"AAPL","o":1,"h":2,"l":0.5,"c":1.5,"v":10,"t":"'
        + _STAMPS[3]
        + '","n":3,"vw":1.2}',
        '{"T":"success","msg":"authenticated"}',
        '{"T":"subscription","quotes":["AAPL"],"trades":[],"bars":[]}',
        '{"T":"d","S":"AAPL"}',
        '{"T":"error","code":405,"msg":"symbol limit exceeded"}',
        '{"T":"t","T":"q"}',
        '{"T":"x\\u0071"}',
    ]
)
_FRAMES = st.lists(st.lists(_QUOTES | _OTHERS, min_size=1, max_size=6), min_size=1, max_size=4)
_SUBSCRIBED = st.sampled_from([{"*"}, {"AAPL", "MSFT"}, {"AAPL"}, {"*", "AAPL"}, set()])


def _state(processor: QuoteProcessor) -> tuple[Any, ...]:
    return (
        processor.accepted,
        dict(processor.rejected),
        dict(processor._seqs),
        dict(processor._instants),
        sorted(processor.last_accepted),
    )


def _rest(frame: DecodedFrame) -> tuple[Any, ...]:
    return (frame.trades, frame.bars, frame.controls, frame.other, frame.malformed)


def _compare(frames_text: Iterable[bytes], subscribed: set[str]) -> int:
    """Run both paths over the frames in order; return how many took the C path."""
    reference, native_side = QuoteProcessor("E-1"), QuoteProcessor("E-1")
    taken = 0
    for data in frames_text:
        expected = reference.process(decode_frame(data).quotes, subscribed)
        frame, reference_frame = decode_stock_frame(data), decode_frame(data)
        if frame.block is None:
            got = native_side.process(frame.quotes, subscribed)
        else:
            taken += 1
            assert len(frame.block) == len(reference_frame.quotes)
            got = native_side.process_block(frame.block, subscribed)
        # The rest of the frame decodes alike: trades, bars, control messages, counts.
        assert _rest(frame) == _rest(reference_frame), data
        assert got == expected, data
        assert _state(native_side) == _state(reference), data
    return taken


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=_FRAMES, subscribed=_SUBSCRIBED)
@example(  # an odd sum of prices: the mid takes one more digit
    batches=[[_element("AAPL", "150.01", "150.02")]],
    subscribed={"*"},
)
def test_both_paths_agree_on_any_frame(batches: list[list[str]], subscribed: set[str]) -> None:
    _compare(((f"[{','.join(b)}]").encode() for b in batches), subscribed)


def test_plain_frames_take_the_native_path_and_agree() -> None:
    # The simulator's frames are what the feed sends: every one must take the C path.
    for symbols in ([f"S{i}" for i in range(100)], list(build_universe(2_000, 1.0, seed=3))):
        data = frames(symbols, 40)
        assert _compare(data, {"*"}) == len(data)
        assert _compare(data, set(symbols[::3])) == len(data)


def test_more_symbols_than_the_name_table_holds_agree() -> None:
    # The C path keeps the str of each symbol it met (quotes_symbols.h), emptying the
    # table when it is half full: 70,000 names are more than its 65,536 slots, and a
    # second pass over them meets names made before and after the table was emptied.
    symbols = [f"Z{i}" for i in range(70_000)]
    elements = [_element(s, "10.01", "10.02") for s in symbols]
    data = [f"[{','.join(elements[i : i + 5000])}]".encode() for i in range(0, 70_000, 5000)]
    assert _compare(data + data, {"*"}) == 2 * len(data)


def test_a_symbol_met_again_is_the_same_object_and_updates_are_not_tracked() -> None:
    # The same str each time: the processor's dicts find it by identity, no new string
    # per frame. An update (str, bytes, bytes) cannot form a cycle: the collector skips it.
    processor = QuoteProcessor("E")
    data = frames(["AAPL", "MSFT"], 2)
    first, second = (decode_stock_frame(text).block for text in data)
    assert first is not None and second is not None
    a, b = processor.process_block(first, {"*"}), processor.process_block(second, {"*"})
    assert a[0][0] is next(u[0] for u in b if u[0] == a[0][0])
    assert not any(gc.is_tracked(update) for update in a + b)


@pytest.mark.parametrize(
    ("bp", "ap", "reason"),
    [
        ("150.10", "150.00", "crossed"),
        ("1", "1000000000", "malformed"),  # the price cap
        ("123456789012345678", "123456789012345678.1", "bail"),  # 19 digits: Python's
        ("12345678901234567.8", "0.12345678901234567", "crossed"),
        ("0.00000001", "0.0000001", "bail"),  # Decimal prints 1E-8: Python's
        ("0", "0.000001", "bail"),  # the mid would print as 5E-7
    ],
)
def test_price_rules_match(bp: str, ap: str, reason: str) -> None:
    data = f"[{_element('AAPL', bp, ap)}]".encode()
    assert (decode_stock_frame(data).block is None) == (reason == "bail")
    _compare([data], {"AAPL"})
    reference = QuoteProcessor("E")
    reference.process(decode_frame(data).quotes, {"AAPL"})
    if reason != "bail":
        assert dict(reference.rejected) == {reason: 1}


def test_a_mid_past_28_digits_is_malformed_on_both_paths() -> None:
    # Aligned, these need 35 digits: Decimal's Inexact trap makes the quote malformed.
    data = f"[{_element('AAPL', '1.00000000000000001', '12345678901234567')}]"
    assert decode_stock_frame(data.encode()).block is not None
    _compare([data.encode()], {"*"})
    reference = QuoteProcessor("E")
    reference.process(decode_frame(data.encode()).quotes, {"*"})
    assert dict(reference.rejected) == {"malformed": 1}


@pytest.mark.parametrize(
    "data",
    [
        b"[]",
        b"{}",
        b'[{"T":"success","msg":"authenticated"}]',
        b"[" + _element("AAPL", "1", "2").encode() + b",]",
        b"[" + _element("AAPL", "1", "2").encode() + b"] x",
        b'[{"T":"q","S":"AAPL","bp":1,"ap":2,"bs":1,"as":1}]',  # no t
        b'[{"T":"q","S":"AAPL","S":"MSFT","bp":1,"ap":2,"bs":1,"as":1,"t":"'
        + _STAMPS[0].encode()
        + b'"}]',  # a duplicate key
        b'[{"T":"q","S":"AAPL","bp":01,"ap":2,"bs":1,"as":1,"t":"' + _STAMPS[0].encode() + b'"}]',
    ],
)
def test_other_frames_are_left_to_the_python_path(data: bytes) -> None:
    assert decode_stock_frame(data).block is None
    assert decode_stock_frame(data) == decode_frame(data)


def test_a_refused_instant_key_is_cached_but_never_ordered() -> None:
    late, early = "2026-11-28T15:22:02.5Z", "2026-11-28T15:22:01.1234567890123Z"
    batches = [[late], [early], [late]]
    texts = [
        f"[{','.join(_element('AAPL', '1', '2', stamp=s) for s in b)}]".encode() for b in batches
    ]
    assert _compare(texts, {"AAPL"}) == 3
    processor = QuoteProcessor("E")
    for text in texts:
        processor.process(decode_frame(text).quotes, {"AAPL"})
    assert processor.accepted == 3  # the unreadable stamp neither drops nor is dropped


def test_the_epoch_is_encoded_as_json() -> None:
    processor = QuoteProcessor('E"1')
    data = f"[{_element('AAPL', '1', '2')}]".encode()
    block = decode_stock_frame(data).block
    assert block is not None
    ((_, record, event),) = processor.process_block(block, {"*"})
    assert json.loads(record)["epoch"] == json.loads(event)["epoch"] == 'E"1'


def test_the_native_path_leaks_no_object() -> None:
    # A reference the C code forgets to release is a block that never comes back: run
    # the same work twenty times and count the interpreter's allocated blocks.
    data = frames([f"S{i}" for i in range(50)], 20)
    packer, latest = FramePacker(30), dict[str, PriceUpdate]()

    def run() -> None:
        processor = QuoteProcessor("E")
        for text in data:
            block = decode_stock_frame(text).block
            assert block is not None
            packer.pack(processor.process_block(block, {"S1", "S2", "*"}), latest)

    run()
    gc.collect()
    before = sys.getallocatedblocks()
    for _ in range(20):
        run()
    gc.collect()
    assert sys.getallocatedblocks() - before < 200  # 20 runs x 4,000 quotes


_FRAME = frames(["AAPL", "MSFT", "BRK.B"], 1)[0][:700].rsplit(b',{"T"', 1)[0] + b"]"
_NOISE = b'{}[]",:-.+0123456789eE\\ \t\nqtSabpxnul\x00\x7f\xc3\xa9'


def test_a_frame_cut_anywhere_agrees_and_never_crashes() -> None:
    assert decode_stock_frame(_FRAME).block is not None  # the whole frame is a native one
    for end in range(len(_FRAME) + 1):
        _compare([_FRAME[:end]], {"*"})


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    edits=st.lists(
        st.tuples(st.integers(0, len(_FRAME) - 1), st.sampled_from(list(_NOISE)), st.booleans()),
        min_size=1,
        max_size=4,
    )
)
def test_a_frame_with_bytes_changed_agrees_and_never_crashes(
    edits: list[tuple[int, int, bool]],
) -> None:
    data = bytearray(_FRAME)
    for at, byte, insert in edits:
        if insert:
            data.insert(at, byte)
        else:
            data[at] = byte
    _compare([bytes(data)], {"AAPL", "BRK.B"})


@settings(max_examples=500, deadline=None)
@given(data=st.binary(max_size=300))
def test_any_bytes_agree_and_never_crash(data: bytes) -> None:
    _compare([data], {"*"})


def test_quotes_mixed_with_trades_and_controls_take_the_native_path() -> None:
    # quotes + trades subscribed: the feed mixes both in a frame. The quotes stay native,
    # the rest decodes as the Python decoder does.
    trade = '{"T":"t","S":"AAPL","i":7,"x":"V","p":187.5,"s":100,"t":"' + _STAMPS[0] + '"}'
    ack = '{"T":"subscription","quotes":["AAPL"],"trades":["AAPL"]}'
    quotes = [_element("AAPL", "1", "2"), _element("MSFT", "3", "4")]
    data = f"[{quotes[0]},{trade},{ack},{quotes[1]}]".encode()
    frame = decode_stock_frame(data)
    assert frame.block is not None and len(frame.block) == 2
    assert [t.p for t in frame.trades] == [Decimal("187.5")]
    assert len(frame.controls) == 1
    assert _compare([data], {"AAPL", "MSFT"}) == 1
    # A quote the C path refuses sends the whole frame to the Python path (order kept).
    odd = f"[{quotes[0]},{trade},{_element('AAPL', '1e0', '2')}]".encode()
    assert native.scan is not None and native.scan(odd, native.MAX_PRICE_UNITS) is None
    assert decode_stock_frame(odd).block is None
