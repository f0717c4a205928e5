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
from decimal import Decimal
from typing import Annotated, Any, Final, Union

import msgspec

__all__ = [
    "ControlMessage",
    "DecodedFrame",
    "ErrorMessage",
    "Quote",
    "SubscriptionAck",
    "SuccessMessage",
    "decode_frame",
    "encode_auth",
    "encode_subscription",
]

logger = logging.getLogger(__name__)

# RFC 3339 text, kept as sent (nanoseconds). Its length is checked here in C; the
# separators by the processor (a regex here would cost 40% of the whole decode).
Timestamp = Annotated[str, msgspec.Meta(min_length=20, max_length=35)]
# Sizes are int64 on every consumer we know of; bigger is corruption, not a big order.
Size = Annotated[int, msgspec.Meta(le=2**63 - 1)]


class Quote(msgspec.Struct, tag_field="T", tag="q", frozen=True, gc=False):
    """A stock quote (``T`` = ``q``). Unknown keys (``c``, ``z``, ``r``) are ignored."""

    S: str
    bp: Decimal
    bs: Size
    ap: Decimal
    t: Timestamp
    as_: Size = msgspec.field(name="as")
    bx: str | None = None
    ax: str | None = None


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


def _other(tag: str) -> type[msgspec.Struct]:
    # Market data we do not process (trades, bars, statuses, ...): decoded only far
    # enough to be recognised, so a frame mixing them with quotes keeps its fast path.
    return msgspec.defstruct(
        f"Other_{tag}", [("S", str, "")], tag_field="T", tag=tag, frozen=True, gc=False
    )


_OTHER_TAGS: Final = ("t", "b", "d", "u", "s", "l", "c", "x", "i", "o", "n")
_OTHERS = tuple(_other(tag) for tag in _OTHER_TAGS)

ControlMessage = SuccessMessage | ErrorMessage | SubscriptionAck

_quotes_decoder: Final = msgspec.json.Decoder(list[Quote])
# Built at runtime from the generated types, so typed as Any for mypy.
_union: Any = Union[(Quote, SuccessMessage, ErrorMessage, SubscriptionAck, *_OTHERS)]
_frame_decoder: Final = msgspec.json.Decoder(list[_union])
_element_decoder: Final = msgspec.json.Decoder(_union)
_raw_decoder: Final = msgspec.json.Decoder(list[msgspec.Raw])
_encoder: Final = msgspec.json.Encoder()


@dataclass(slots=True)
class DecodedFrame:
    """What one received frame held."""

    quotes: list[Quote] = field(default_factory=list)
    controls: list[ControlMessage] = field(default_factory=list)
    other: int = 0  # market data of types we do not process
    malformed: int = 0  # elements (or whole frames) that could not be decoded
    errors: list[str] = field(default_factory=list)  # why, for the first few


_MAX_ERRORS_KEPT: Final = 3
# Besides DecodeError, msgspec raises RecursionError for nesting deeper than the
# interpreter's recursion limit ([[[[...]]]]), and UnicodeEncodeError for a ``str``
# frame holding lone surrogates: both are bad input too.
_BAD_INPUT: Final = (msgspec.DecodeError, RecursionError, UnicodeEncodeError)


def decode_frame(data: bytes | str) -> DecodedFrame:
    """Decode one WebSocket message; never raises for bad input."""
    try:
        return DecodedFrame(quotes=_quotes_decoder.decode(data))
    except _BAD_INPUT:
        pass
    try:
        messages = _frame_decoder.decode(data)
    except _BAD_INPUT:
        return _decode_elements(data)
    return _split(messages)


def _split(messages: Iterable[object]) -> DecodedFrame:
    frame = DecodedFrame()
    for message in messages:
        if type(message) is Quote:
            frame.quotes.append(message)
        elif isinstance(message, SuccessMessage | ErrorMessage | SubscriptionAck):
            frame.controls.append(message)
        else:
            frame.other += 1
    return frame


def _decode_elements(data: bytes | str) -> DecodedFrame:
    try:
        elements = _raw_decoder.decode(data)
    except _BAD_INPUT as exc:
        return DecodedFrame(malformed=1, errors=[f"frame: {exc}"])
    decoded: list[object] = []
    errors: list[str] = []
    malformed = 0
    for index, raw in enumerate(elements):
        try:
            decoded.append(_element_decoder.decode(raw))
        except _BAD_INPUT as exc:
            malformed += 1
            if len(errors) < _MAX_ERRORS_KEPT:
                errors.append(f"element {index}: {exc}")
    frame = _split(decoded)
    frame.malformed = malformed
    frame.errors = errors
    return frame


def encode_auth(key: str, secret: str) -> bytes:
    """The auth message. Its bytes hold the secret: never log them."""
    return _encoder.encode({"action": "auth", "key": key, "secret": secret})


def encode_subscription(action: str, quotes: Iterable[str]) -> bytes:
    """A ``subscribe`` or ``unsubscribe`` message for the quotes channel."""
    if action not in ("subscribe", "unsubscribe"):
        raise ValueError(f"unknown action {action!r}")
    return _encoder.encode({"action": action, "quotes": sorted(quotes)})
