"""The live stream's messages: typed records, their JSON, and reading a client's requests.

The contract (docs/streaming.md) in short. A frame (a WebSocket text message, or one SSE
``data:`` line) holds either one JSON object or a JSON array of them, in order:

- ``{"type":"snapshot","symbol":"AAPL","data":{...}|null}``: one per symbol on subscribe,
  and after each ``resync``; ``data`` is ``null`` when nothing is cached;
- ``{"type":"price","data":{...}}``: an update;
- ``{"type":"resync","symbols":[...],"reason":"..."}``: a gap; snapshots follow;
- ``{"type":"coalesced","replaced":N,"symbols":[...]}``: the client was behind and ``N``
  older updates of ``symbols`` were replaced by newer ones (latest-value);
- ``{"type":"subscriptions","symbols":[...]}``: the client's symbols after a request;
- ``{"type":"error","message":"..."}``: a bad request (the socket stays open), or why the
  server is closing the stream.

``data`` holds ``symbol``, ``bid``, ``ask``, ``mid``, ``bid_size``, ``ask_size`` (exact
decimals as strings: ``"100"`` for a stock, ``"0.00012345"`` for a crypto pair),
``timestamp`` (the exchange's), ``seq`` and ``epoch``.
An update is encoded once and the same bytes go to every client.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Final, Literal

import msgspec

from libs.market_data.consumers.records import LivePrice
from libs.market_data.exceptions import InvalidSymbolError
from libs.market_data.symbols import normalize_symbol

__all__ = [
    "ALL",
    "MAX_REQUEST_BYTES",
    "MAX_SYMBOLS_PER_CLIENT",
    "PriceBody",
    "StreamRequest",
    "encode_coalesced",
    "encode_error",
    "encode_price",
    "encode_resync",
    "encode_snapshot",
    "encode_subscriptions",
    "frame",
    "parse_request",
    "parse_symbols",
]

MAX_REQUEST_BYTES: Final = 64 * 1024  # a client message above it gets an error, unread
MAX_SYMBOLS_PER_CLIENT: Final = 1000
ALL: Final = "*"  # every symbol of the namespace


class PriceBody(msgspec.Struct):
    """``data`` of ``price`` and ``snapshot`` messages."""

    symbol: str
    bid: str
    ask: str
    mid: str
    bid_size: str  # exact decimal text: "100" (a stock), "0.00012345" (a crypto pair)
    ask_size: str
    timestamp: str
    seq: int
    epoch: str


class _Price(msgspec.Struct, tag_field="type", tag="price"):
    data: PriceBody


class _Snapshot(msgspec.Struct, tag_field="type", tag="snapshot"):
    symbol: str
    data: PriceBody | None


class _Resync(msgspec.Struct, tag_field="type", tag="resync"):
    symbols: list[str]
    reason: str


class _Coalesced(msgspec.Struct, tag_field="type", tag="coalesced"):
    replaced: int
    symbols: list[str]


class _Subscriptions(msgspec.Struct, tag_field="type", tag="subscriptions"):
    symbols: list[str]


class _Error(msgspec.Struct, tag_field="type", tag="error"):
    message: str


_encode: Final = msgspec.json.Encoder().encode


def _body(price: LivePrice) -> PriceBody:
    return PriceBody(
        price.symbol, str(price.bid), str(price.ask), str(price.mid), str(price.bid_size),
        str(price.ask_size), price.timestamp, price.seq, price.epoch,
    )  # fmt: skip


def encode_price(price: LivePrice) -> bytes:
    return _encode(_Price(_body(price)))


def encode_snapshot(symbol: str, price: LivePrice | None) -> bytes:
    return _encode(_Snapshot(symbol, None if price is None else _body(price)))


def encode_resync(symbols: Iterable[str], reason: str) -> bytes:
    return _encode(_Resync(list(symbols), reason))


def encode_coalesced(replaced: int, symbols: Iterable[str]) -> bytes:
    return _encode(_Coalesced(replaced, sorted(symbols)))


def encode_subscriptions(symbols: Iterable[str]) -> bytes:
    return _encode(_Subscriptions(list(symbols)))


def encode_error(message: str) -> bytes:
    return _encode(_Error(message))


def frame(messages: Sequence[bytes]) -> bytes:
    """One message as itself, several as one JSON array (fewer frames, one write)."""
    if len(messages) == 1:
        return messages[0]
    return b"[" + b",".join(messages) + b"]"


# -- requests ------------------------------------------------------------------------------


class StreamRequest(msgspec.Struct, frozen=True):
    """A client's request: ``subscribe`` or ``unsubscribe`` ``symbols`` (or ``"*"``)."""

    action: Literal["subscribe", "unsubscribe"]
    symbols: tuple[str, ...] | Literal["*"]


class _Wire(msgspec.Struct, forbid_unknown_fields=True):
    action: str
    symbols: list[object] | str


_decode_wire: Final = msgspec.json.Decoder(_Wire).decode


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_symbols(values: Iterable[object]) -> tuple[str, ...]:
    """Normalised, de-duplicated tickers; :class:`InvalidSymbolError` names a bad one."""
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(normalize_symbol(value), None)
        if len(seen) > MAX_SYMBOLS_PER_CLIENT:
            raise ValueError(f"at most {MAX_SYMBOLS_PER_CLIENT} symbols per client")
    if not seen:
        raise ValueError('symbols: at least one, or "*"')
    return tuple(seen)


def parse_request(raw: str | bytes) -> StreamRequest | str:
    """The request in ``raw``, or the text of the ``error`` message to answer."""
    if len(raw) > MAX_REQUEST_BYTES:
        return f"message too large ({len(raw)} bytes; at most {MAX_REQUEST_BYTES})"
    try:
        wire = _decode_wire(raw)
    except msgspec.ValidationError as exc:
        return f"invalid request: {exc}"
    except msgspec.DecodeError:
        return 'not JSON: send {"action":"subscribe","symbols":["AAPL"]}'
    if wire.action not in ("subscribe", "unsubscribe"):
        return f'unknown action {_shown(wire.action)}: use "subscribe" or "unsubscribe"'
    action: Literal["subscribe", "unsubscribe"] = (
        "subscribe" if wire.action == "subscribe" else "unsubscribe"
    )
    if isinstance(wire.symbols, str):
        if wire.symbols != ALL:
            return f'symbols must be a list of tickers or "*", not {_shown(wire.symbols)}'
        return StreamRequest(action, ALL)
    try:
        return StreamRequest(action, parse_symbols(wire.symbols))
    except InvalidSymbolError as exc:
        return f"invalid symbol {_shown(exc.symbol)}: {exc.why}"
    except ValueError as exc:
        return str(exc)
