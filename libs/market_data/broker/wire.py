"""Alpaca's REST answers, decoded from their bytes into the records of
:mod:`libs.market_data.broker.models` with exact decimals.

``GET /v2/positions`` sends every number as a JSON string,
``GET /v2/stocks/snapshots`` and the latest quotes (stocks and crypto) as JSON numbers;
msgspec reads them straight from the response bytes into :class:`~decimal.Decimal`, so
no price ever passes through a binary float (``response.json()`` would make floats).
Only the fields we read are declared; unknown fields are ignored.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Final

import msgspec

from libs.market_data.broker.crypto import position_symbol
from libs.market_data.broker.models import LatestQuote, Position, PositionSide, PreviousClose
from libs.market_data.exceptions import BrokerResponseError

__all__ = ["decode_error", "decode_latest_quotes", "decode_positions", "decode_previous_closes"]

logger = logging.getLogger(__name__)


class _WirePosition(msgspec.Struct):
    symbol: str
    qty: Decimal
    side: str
    avg_entry_price: Decimal
    asset_id: str = ""
    exchange: str = ""
    asset_class: str = ""
    cost_basis: Decimal | None = None
    market_value: Decimal | None = None
    current_price: Decimal | None = None
    lastday_price: Decimal | None = None
    unrealized_pl: Decimal | None = None


class _WireBar(msgspec.Struct):
    c: Decimal
    t: str = ""


class _WireSnapshot(msgspec.Struct):
    prev_daily_bar: _WireBar | None = msgspec.field(default=None, name="prevDailyBar")


class _WireQuote(msgspec.Struct):
    # The stream's field names without T/S (reference §9.3); c and z are not read.
    bp: Decimal
    ap: Decimal
    bs: int
    t: str
    as_: int = msgspec.field(name="as")
    bx: str | None = None
    ax: str | None = None


class _WireCryptoQuote(msgspec.Struct):
    # The crypto feed's: fractional sizes in the base asset, no exchange codes.
    bp: Decimal
    ap: Decimal
    bs: Decimal
    t: str
    as_: Decimal = msgspec.field(name="as")
    bx: str | None = None
    ax: str | None = None


class _WireLatestQuotes(msgspec.Struct):
    # Raw per symbol: one bad entry costs only itself, not the whole batch.
    quotes: dict[str, msgspec.Raw] = {}


class _WireError(msgspec.Struct):
    code: int | None = None
    message: str | None = None


_positions_decoder: Final = msgspec.json.Decoder(list[_WirePosition])
_snapshots_decoder: Final = msgspec.json.Decoder(dict[str, _WireSnapshot | None])
_latest_decoder: Final = msgspec.json.Decoder(_WireLatestQuotes)
_quote_decoder: Final = msgspec.json.Decoder(_WireQuote)
_crypto_quote_decoder: Final = msgspec.json.Decoder(_WireCryptoQuote)
_error_decoder: Final = msgspec.json.Decoder(_WireError)


def _finite(value: Decimal | None, name: str, symbol: str) -> None:
    if value is not None and not value.is_finite():
        raise ValueError(f"{symbol}: {name} is not a finite number ({value})")


def _to_position(wire: _WirePosition) -> Position:
    symbol = wire.symbol
    for name in ("qty", "avg_entry_price", "cost_basis", "market_value", "current_price"):
        _finite(getattr(wire, name), name, symbol)
    if wire.avg_entry_price < 0:
        raise ValueError(f"{symbol}: negative avg_entry_price {wire.avg_entry_price}")
    side_text = wire.side.strip().lower()
    if side_text not in (PositionSide.LONG, PositionSide.SHORT):
        raise ValueError(f"{symbol}: side must be 'long' or 'short', got {wire.side!r}")
    # Alpaca sends a short as side "short" with a negative qty; other brokers (and older
    # docs) send a positive qty. Either way the sign decides the P&L, so it is made
    # negative here, and a negative qty is a short whatever the side says.
    short = side_text == PositionSide.SHORT or wire.qty < 0
    if short and side_text == PositionSide.LONG:
        logger.warning(
            "position %s: negative qty %s with side 'long'; taken as short", symbol, wire.qty
        )
    qty = -abs(wire.qty) if short else wire.qty
    return Position(
        # BTCUSD (a crypto position) as the pair its quotes stream and cache under.
        symbol=position_symbol(symbol, wire.asset_class),
        side=PositionSide.SHORT if short else PositionSide.LONG,
        qty=qty,
        avg_entry_price=wire.avg_entry_price,
        asset_class=wire.asset_class,
        exchange=wire.exchange,
        asset_id=wire.asset_id,
        cost_basis=wire.cost_basis,
        market_value=wire.market_value,
        current_price=wire.current_price,
        lastday_price=wire.lastday_price,
        unrealized_pl=wire.unrealized_pl,
    )


def decode_positions(content: bytes) -> list[Position]:
    """Positions from the bytes of a ``GET /v2/positions`` answer.

    Raises :class:`~libs.market_data.exceptions.BrokerResponseError` when they are not
    the documented array (numbers must be decimal text or JSON numbers, and finite).
    """
    try:
        return [_to_position(wire) for wire in _positions_decoder.decode(content)]
    except (msgspec.MsgspecError, ValueError) as exc:
        raise BrokerResponseError(f"GET /v2/positions: unreadable answer: {exc}") from exc


def decode_previous_closes(content: bytes, what: str) -> dict[str, PreviousClose]:
    """Symbol -> previous daily close from the bytes of a snapshots answer.

    Symbols without a previous bar are absent, and so is a close that is not a positive
    finite number (logged: pricing a position at it would be worse than not pricing it).
    ``what`` names the request in the error a malformed body raises.
    """
    try:
        snapshots = _snapshots_decoder.decode(content)
    except msgspec.MsgspecError as exc:
        raise BrokerResponseError(f"{what}: unreadable answer: {exc}") from exc
    closes: dict[str, PreviousClose] = {}
    for symbol, snapshot in snapshots.items():
        bar = snapshot.prev_daily_bar if snapshot is not None else None
        if bar is None:
            continue
        if not bar.c.is_finite() or bar.c <= 0:
            logger.warning("%s: ignoring previous close %s of %s", what, bar.c, symbol)
            continue
        closes[symbol] = PreviousClose(bar.c, bar.t)
    return closes


def decode_latest_quotes(
    content: bytes, what: str, *, fractional: bool = False
) -> dict[str, LatestQuote]:
    """Symbol -> latest quote from the bytes of a latest-quotes answer: stocks', or with
    ``fractional`` the crypto endpoint's (``Decimal`` sizes, kept exact).

    Symbols without data are absent (as Alpaca leaves them out). An entry that is not a
    quote (missing field, a float stock size, a number that is not finite) is logged and
    left out; a body that is not ``{"quotes": {...}}`` raises
    :class:`~libs.market_data.exceptions.BrokerResponseError`.
    """
    decoder = _crypto_quote_decoder if fractional else _quote_decoder
    try:
        body = _latest_decoder.decode(content)
    except msgspec.MsgspecError as exc:
        raise BrokerResponseError(f"{what}: unreadable answer: {exc}") from exc
    quotes: dict[str, LatestQuote] = {}
    for symbol, raw in body.quotes.items():
        try:
            wire = decoder.decode(raw)
            _finite(wire.bp, "bp", symbol)
            _finite(wire.ap, "ap", symbol)
            if isinstance(wire, _WireCryptoQuote):
                _finite(wire.bs, "bs", symbol)
                _finite(wire.as_, "as", symbol)
        except (msgspec.MsgspecError, ValueError) as exc:
            logger.warning("%s: ignoring the quote of %s: %s", what, symbol, exc)
            continue
        quotes[symbol] = LatestQuote(
            symbol=symbol,
            bid_price=wire.bp,
            ask_price=wire.ap,
            bid_size=wire.bs,
            ask_size=wire.as_,
            timestamp=wire.t,
            bid_exchange=wire.bx,
            ask_exchange=wire.ax,
        )
    return quotes


def decode_error(content: bytes) -> tuple[int | None, str | None] | None:
    """Alpaca's ``{"code", "message"}`` error body, or ``None`` when the body is not one."""
    try:
        body = _error_decoder.decode(content)
    except msgspec.MsgspecError:
        return None
    return body.code, body.message
