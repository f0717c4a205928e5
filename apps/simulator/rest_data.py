"""What the REST endpoints report: positions valued at the simulated quotes, snapshots and
latest quotes.

Positions carry every number as a JSON string, a short with a negative ``qty`` and side
``short`` (reference §9.2). Snapshots carry ``prevDailyBar``, ``dailyBar`` and, once
quoted, ``latestQuote``; latest quotes are ``{"quotes": {SYM: {...}}}`` (reference §9.3).
The previous close is the symbol's random-walk start price unless a test sets one; the
current quote is the newer of the last one sent and one a test set off the stream (a
quote made while nobody listened, :meth:`RestData.set_latest_quote`); the current price
is its mid. A symbol never quoted has no latest quote: it is left out, as Alpaca leaves
out a symbol without data.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from apps.simulator.positions import SimulatedPosition, parse_decimal, parse_positions
from apps.simulator.quotes import parse_rfc3339_ns

__all__ = ["RestData"]


# A REST quote's fields: the stream's without T and S (reference §9.3); a crypto
# quote has no exchange, condition or tape fields, as on the crypto feed.
_QUOTE_FIELDS: Final = ("t", "ax", "ap", "as", "bx", "bp", "bs", "c", "z")
_CRYPTO_QUOTE_FIELDS: Final = ("t", "ap", "as", "bp", "bs")


def _stamp(quote: Mapping[str, Any]) -> int:
    """A quote's time in ns; an unreadable one sorts first (tests inject odd times)."""
    try:
        return parse_rfc3339_ns(str(quote.get("t", "")))
    except ValueError:
        return 0


def _text(value: Decimal) -> str:
    # Alpaca writes plain decimals ("-1875.5"), never exponents.
    return f"{value:f}"


def _previous_session_start(now: datetime) -> str:
    """Midnight New York time (04:00Z, as Alpaca stamps daily bars) of the last weekday
    before ``now``'s date."""
    day = now.date() - timedelta(days=1)
    while day.weekday() >= 5:
        day -= timedelta(days=1)
    return f"{day.isoformat()}T04:00:00Z"


class RestData:
    """Open positions and previous closes, and the response bodies built from them.

    ``quote_of(symbol)`` returns the last quote sent for a symbol (bid ``bp`` / ask
    ``ap`` as exact decimals) or ``None``; ``start_price(symbol)`` its walk's start.
    """

    def __init__(
        self,
        *,
        quote_of: Callable[[str], Mapping[str, Any] | None],
        start_price: Callable[[str], Decimal],
        positions: Iterable[Mapping[str, Any] | SimulatedPosition] = (),
    ) -> None:
        self._quote_of = quote_of
        self._start_price = start_price
        self._positions: list[SimulatedPosition] = []
        self._previous_closes: dict[str, Decimal] = {}
        # symbol -> a quote set off the stream (tests: what happened during a gap)
        self._off_stream: dict[str, dict[str, Any]] = {}
        self.set_positions(positions)

    # -- state ------------------------------------------------------------------------

    @property
    def positions(self) -> list[SimulatedPosition]:
        """The open positions, by symbol."""
        return list(self._positions)

    def set_positions(self, positions: Iterable[Mapping[str, Any] | SimulatedPosition]) -> None:
        """Replace the open positions (see :func:`parse_positions` for the mapping form)."""
        items = list(positions)
        ready = [p for p in items if isinstance(p, SimulatedPosition)]
        raw = [p for p in items if not isinstance(p, SimulatedPosition)]
        self._positions = sorted([*ready, *parse_positions(raw)], key=lambda p: p.symbol)

    def set_previous_close(self, symbol: str, price: Decimal | str) -> None:
        """Make the snapshots report ``price`` as the previous close of ``symbol``."""
        self._previous_closes[symbol.upper()] = parse_decimal(price, f"{symbol} previous close")

    def previous_close(self, symbol: str) -> Decimal:
        """The previous close the snapshots report for ``symbol``."""
        symbol = symbol.upper()
        price = self._previous_closes.get(symbol)
        return self._start_price(symbol) if price is None else price

    def set_latest_quote(self, quote: Mapping[str, Any]) -> None:
        """Make ``quote`` (a quote object with ``S``, ``t``, prices as ``Decimal``) the
        symbol's current quote unless a newer one is sent; it is not streamed."""
        self._off_stream[str(quote["S"]).upper()] = dict(quote)

    def latest_quote(self, symbol: str) -> Mapping[str, Any] | None:
        """The newer of the last quote sent and the one set off the stream, or ``None``."""
        sent = self._quote_of(symbol)
        off = self._off_stream.get(symbol)
        if sent is None or off is None:
            return off if sent is None else sent
        return off if _stamp(off) > _stamp(sent) else sent

    # -- bodies -----------------------------------------------------------------------

    def positions_body(self) -> list[dict[str, Any]]:
        """``GET /v2/positions``: every open position."""
        return [self._position_json(p) for p in self._positions]

    def snapshots_body(self, symbols: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``GET /v2/stocks/snapshots``: one snapshot per distinct symbol, in order."""
        return {s: self._snapshot(s) for s in dict.fromkeys(symbols)}

    def latest_quotes_body(self, symbols: Iterable[str], *, crypto: bool = False) -> dict[str, Any]:
        """``GET /v2/stocks/quotes/latest`` (``crypto``: ``GET
        /v1beta3/crypto/{loc}/latest/quotes``): the current quote of every distinct
        symbol that has one."""
        fields = _CRYPTO_QUOTE_FIELDS if crypto else _QUOTE_FIELDS
        quotes: dict[str, Any] = {}
        for symbol in dict.fromkeys(symbols):
            quote = self.latest_quote(symbol)
            if quote is not None:
                quotes[symbol] = {k: quote[k] for k in fields if k in quote}
        return {"quotes": quotes}

    def _current_price(self, symbol: str) -> Decimal:
        quote = self.latest_quote(symbol)
        if quote is not None:
            bid, ask = quote.get("bp"), quote.get("ap")
            if isinstance(bid, Decimal) and isinstance(ask, Decimal):
                return (bid + ask) / 2
        return self.previous_close(symbol)

    def _position_json(self, position: SimulatedPosition) -> dict[str, Any]:
        qty = position.qty
        current = self._current_price(position.quote_symbol)
        lastday = self.previous_close(position.symbol)
        cost = qty * position.avg_entry_price
        value = qty * current
        pl = value - cost
        intraday = value - qty * lastday
        plpc = pl / abs(cost) if cost else Decimal(0)
        intraday_plpc = intraday / abs(qty * lastday) if lastday else Decimal(0)
        change = (current - lastday) / lastday if lastday else Decimal(0)
        usd = {
            "avg_entry_price": _text(position.avg_entry_price),
            "market_value": _text(value),
            "cost_basis": _text(cost),
            "unrealized_pl": _text(pl),
            "unrealized_plpc": _text(round(plpc, 6)),
            "unrealized_intraday_pl": _text(intraday),
            "unrealized_intraday_plpc": _text(round(intraday_plpc, 6)),
            "current_price": _text(current),
            "lastday_price": _text(lastday),
            "change_today": _text(round(change, 6)),
        }
        return {
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"alpaca-sim:{position.symbol}")),
            "symbol": position.symbol,
            "exchange": position.exchange,
            "asset_class": position.asset_class,
            "asset_marginable": True,
            "qty": _text(qty),
            "qty_available": _text(qty),
            "side": "short" if qty < 0 else "long",
            **usd,
            "usd": usd,
        }

    def _snapshot(self, symbol: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        close = self.previous_close(symbol)
        current = self._current_price(symbol)
        today = f"{now.date().isoformat()}T04:00:00Z"
        snapshot: dict[str, Any] = {
            "dailyBar": {
                "t": today,
                "o": close,
                "h": max(close, current),
                "l": min(close, current),
                "c": current,
                "v": 0,
                "n": 0,
                "vw": current,
            },
            "prevDailyBar": {
                "t": _previous_session_start(now),
                "o": close,
                "h": close,
                "l": close,
                "c": close,
                "v": 0,
                "n": 0,
                "vw": close,
            },
        }
        quote = self.latest_quote(symbol)
        if quote is not None:
            snapshot["latestQuote"] = {k: quote[k] for k in _QUOTE_FIELDS if k in quote}
        return snapshot
