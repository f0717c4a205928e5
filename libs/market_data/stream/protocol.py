"""Alpaca's market-data wire messages: typed decoding and encoding, no I/O.

Frames are JSON arrays. Numbers are decoded straight from the frame's text into
:class:`~decimal.Decimal` (msgspec parses the digits; no float is ever involved).

Decoding is tiered so the common case costs one C call and a bad element costs only
itself: a frame of quotes decodes as ``list[Quote]``; a frame with other message types
falls back to the tagged union; a frame that still fails is split into elements and
each element is decoded on its own, the bad ones counted and dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Union

import msgspec

from libs.market_data import native
from libs.market_data.stream.messages import (
    Bar,
    CryptoBar,
    CryptoQuote,
    CryptoTrade,
    CryptoUpdatedBar,
    Quote,
    Trade,
    UpdatedBar,
)
from libs.market_data.topics import Channel, make_topic, parse_topic

__all__ = [
    "ControlMessage",
    "DecodedFrame",
    "ErrorMessage",
    "FrameDecoder",
    "Quote",
    "SubscriptionAck",
    "SuccessMessage",
    "decode_crypto_frame",
    "decode_frame",
    "decode_stock_frame",
    "encode_auth",
    "encode_subscription",
]

logger = logging.getLogger(__name__)


class SuccessMessage(msgspec.Struct, tag_field="T", tag="success", frozen=True):
    msg: str


class ErrorMessage(msgspec.Struct, tag_field="T", tag="error", frozen=True):
    code: int
    msg: str = ""


class SubscriptionAck(msgspec.Struct, tag_field="T", tag="subscription", frozen=True):
    """The server's full current subscription set, sent after every (un)subscribe."""

    quotes: list[str] = []
    trades: list[str] = []
    bars: list[str] = []

    def topics(self) -> frozenset[str]:
        """The acknowledged set as topics (``AAPL``, ``trades:AAPL``, ``bars:AAPL``)."""
        return frozenset(
            [
                *self.quotes,
                *(make_topic(Channel.TRADES, s) for s in self.trades),
                *(make_topic(Channel.BARS, s) for s in self.bars),
            ]
        )


def _other(tag: str) -> type[msgspec.Struct]:
    # Market data we do not process (statuses, daily bars, ...): decoded only far
    # enough to be recognised, so a frame mixing them with quotes keeps its fast path.
    return msgspec.defstruct(
        f"Other_{tag}", [("S", str, "")], tag_field="T", tag=tag, frozen=True, gc=False
    )


_OTHER_TAGS: Final = ("d", "s", "l", "c", "x", "i", "o", "n")
_OTHERS = tuple(_other(tag) for tag in _OTHER_TAGS)

ControlMessage = SuccessMessage | ErrorMessage | SubscriptionAck

_raw_decoder: Final = msgspec.json.Decoder(list[msgspec.Raw])
_encoder: Final = msgspec.json.Encoder()


@dataclass(slots=True)
class DecodedFrame:
    """What one received frame held."""

    quotes: list[Any] = field(default_factory=list)  # Quote, or CryptoQuote on the crypto feed
    trades: list[Any] = field(default_factory=list)  # Trade / CryptoTrade
    bars: list[Any] = field(default_factory=list)  # Bar, UpdatedBar (and their crypto kin)
    controls: list[ControlMessage] = field(default_factory=list)
    other: int = 0  # market data of types we do not process
    malformed: int = 0  # elements (or whole frames) that could not be decoded
    errors: list[str] = field(default_factory=list)  # why, for the first few
    # A frame of plain stock quotes parsed by the native path, instead of ``quotes``.
    block: native.QuoteBlock | None = None

    def has_data(self) -> bool:
        """True when the frame holds market data to process."""
        return bool(self.quotes or self.block is not None or self.trades or self.bars)


_MAX_ERRORS_KEPT: Final = 3
# Besides DecodeError, msgspec raises RecursionError for nesting deeper than the
# interpreter's recursion limit ([[[[...]]]]), UnicodeEncodeError for a ``str`` frame
# holding lone surrogates, and UnicodeDecodeError for bytes that are not UTF-8 (the
# reader takes frames as bytes, unchecked): all bad input too.
_BAD_INPUT: Final = (msgspec.DecodeError, RecursionError, UnicodeError)


class FrameDecoder:
    """Decodes one feed's frames: the stock feed's, or the crypto feed's (fractional sizes)."""

    __slots__ = ("_bar_types", "_element", "_frame", "_quote_type", "_quotes", "_trade_type")

    def __init__(
        self, quote: type[Any], trade: type[Any], bar: type[Any], updated_bar: type[Any]
    ) -> None:
        self._quote_type = quote
        self._trade_type = trade
        self._bar_types = (bar, updated_bar)
        self._quotes = msgspec.json.Decoder(list[quote])  # type: ignore[valid-type]
        # Built at runtime from the generated types, so typed as Any for mypy.
        kinds = (quote, trade, bar, updated_bar, SuccessMessage, ErrorMessage, SubscriptionAck)
        union: Any = Union[(*kinds, *_OTHERS)]
        self._frame = msgspec.json.Decoder(list[union])
        self._element = msgspec.json.Decoder(union)

    def decode(self, data: bytes | str) -> DecodedFrame:
        """Decode one WebSocket message; never raises for bad input."""
        try:
            return DecodedFrame(quotes=self._quotes.decode(data))
        except _BAD_INPUT:
            pass
        try:
            messages = self._frame.decode(data)
        except _BAD_INPUT:
            return self._decode_elements(data)
        return self._split(messages)

    def _split(self, messages: Iterable[object]) -> DecodedFrame:
        frame = DecodedFrame()
        quote, trade, bars = self._quote_type, self._trade_type, self._bar_types
        for message in messages:
            kind = type(message)
            if kind is quote:
                frame.quotes.append(message)
            elif kind is trade:
                frame.trades.append(message)
            elif kind in bars:
                frame.bars.append(message)
            elif isinstance(message, SuccessMessage | ErrorMessage | SubscriptionAck):
                frame.controls.append(message)
            else:
                frame.other += 1
        return frame

    def _decode_elements(self, data: bytes | str) -> DecodedFrame:
        try:
            elements = _raw_decoder.decode(data)
        except _BAD_INPUT as exc:
            return DecodedFrame(malformed=1, errors=[f"frame: {exc}"])
        decoded: list[object] = []
        errors: list[str] = []
        malformed = 0
        for index, raw in enumerate(elements):
            try:
                decoded.append(self._element.decode(raw))
            except _BAD_INPUT as exc:
                malformed += 1
                if len(errors) < _MAX_ERRORS_KEPT:
                    errors.append(f"element {index}: {exc}")
        frame = self._split(decoded)
        frame.malformed = malformed
        frame.errors = errors
        return frame


_STOCKS: Final = FrameDecoder(Quote, Trade, Bar, UpdatedBar)
_CRYPTO: Final = FrameDecoder(CryptoQuote, CryptoTrade, CryptoBar, CryptoUpdatedBar)
decode_frame: Final = _STOCKS.decode
"""Decode one stock-feed WebSocket message; never raises for bad input."""
decode_crypto_frame: Final = _CRYPTO.decode
"""Decode one crypto-feed message (fractional sizes); never raises for bad input."""


def decode_stock_frame(data: bytes | str) -> DecodedFrame:
    """:func:`decode_frame`, trying the native path first (the stock feed's reader).

    A frame's plain quotes come back as a ``block`` for
    :meth:`~libs.market_data.pipeline.processor.QuoteProcessor.process_block`, its other
    elements (trades, bars, control messages) decoded as :func:`decode_frame` does; a
    frame with a quote the C path does not take, or every frame when the native path is
    not built, as :func:`decode_frame`'s.
    """
    scan = native.scan
    if scan is not None and type(data) is bytes:
        block = scan(data, native.MAX_PRICE_UNITS)
        if block is not None:
            others = block.others
            if not others:
                return DecodedFrame(block=block)
            # Trades, bars and control messages beside the quotes: decoded here, as ever.
            rest = decode_frame(b"[" + b",".join(others) + b"]")
            if not rest.quotes:  # never, the C checked each one's "T": but stay exact
                rest.block = block
                return rest
    return decode_frame(data)


def encode_auth(key: str, secret: str) -> bytes:
    """The auth message. Its bytes hold the secret: never log them."""
    return _encoder.encode({"action": "auth", "key": key, "secret": secret})


def encode_subscription(action: str, topics: Iterable[str]) -> bytes:
    """A ``subscribe`` or ``unsubscribe`` message for these topics (``AAPL``,
    ``trades:AAPL``, ``bars:AAPL``): a list per channel, bars with ``updatedBars``."""
    if action not in ("subscribe", "unsubscribe"):
        raise ValueError(f"unknown action {action!r}")
    channels: dict[Channel, list[str]] = {channel: [] for channel in Channel}
    for topic in topics:
        channel, symbol = parse_topic(topic)
        channels[channel].append(symbol)
    message: dict[str, Any] = {"action": action, "quotes": sorted(channels[Channel.QUOTES])}
    if channels[Channel.TRADES]:
        message["trades"] = sorted(channels[Channel.TRADES])
    if channels[Channel.BARS]:
        message["bars"] = sorted(channels[Channel.BARS])
        # Corrections of late trades come on their own channel (updatedBars).
        message["updatedBars"] = message["bars"]
    if len(message) > 2 and not message["quotes"]:
        del message["quotes"]
    return _encoder.encode(message)
