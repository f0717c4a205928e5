"""The Alpaca REST endpoints the service reads, served on the simulator's WebSocket port.

- ``GET /v2/positions`` (trading API): the configured positions, every number a JSON
  string as Alpaca sends them, a short with a negative ``qty`` and side ``short``;
  prices follow the simulated quotes (reference §9.2).
- ``GET /v2/stocks/snapshots?symbols=A,B`` (data API): a top-level map keyed by
  symbol with ``prevDailyBar``, ``dailyBar`` and, once quoted, ``latestQuote``; numbers
  are JSON numbers with exact decimal text (reference §9.3). The previous close is the
  symbol's random-walk start price, unless a test sets one.

Both check the ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers (401 on the
trading API, 403 on the data API, as Alpaca answers) and carry the
``X-Ratelimit-*`` headers. Tests make either endpoint fail on demand.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import parse_qs, urlsplit

import msgspec
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = [
    "POSITIONS_PATH",
    "SNAPSHOTS_PATH",
    "SimulatedPosition",
    "SimulatorRest",
    "load_positions",
    "parse_positions",
]

POSITIONS_PATH: Final = "/v2/positions"
SNAPSHOTS_PATH: Final = "/v2/stocks/snapshots"
Endpoint = Literal["positions", "snapshots"]

_SYMBOL: Final = re.compile(r"[A-Z0-9][A-Z0-9./]{0,19}")
_RATE_LIMIT: Final = 200  # requests a minute, Alpaca's default plan
_RATE_WINDOW_S: Final = 60.0
# Alpaca's error bodies: {"code": <status * 100000 + n>, "message": ...}.
_ERROR_BODIES: Final[Mapping[int, tuple[int, str]]] = {
    400: (40010000, "invalid request"),
    401: (40110000, "request is not authorized"),
    403: (40310000, "forbidden"),
    404: (40410000, "not found"),
    429: (42910000, "rate limit exceeded"),
    500: (50010000, "internal server error"),
    502: (50210000, "bad gateway"),
    503: (50310000, "service unavailable"),
    504: (50410000, "gateway timeout"),
}
_encoder: Final = msgspec.json.Encoder(decimal_format="number")
# Numbers in a positions file are read as exact decimals, never floats.
_file_decoder: Final = msgspec.json.Decoder(float_hook=Decimal)


@dataclass(frozen=True, slots=True)
class SimulatedPosition:
    """A position the simulator reports; ``qty`` is signed (negative: short)."""

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    asset_class: str = "us_equity"
    exchange: str = "NASDAQ"


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    retry_after: float | None
    ratelimit_reset: float | None


def _decimal(value: object, what: str) -> Decimal:
    if isinstance(value, float | bool):
        raise ValueError(f"{what}: give {value!r} as a string or an integer, not a float")
    try:
        number = Decimal(value) if isinstance(value, Decimal | int) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return number


def parse_positions(items: Iterable[Mapping[str, Any]]) -> list[SimulatedPosition]:
    """Positions from mappings with ``symbol``, ``qty``, ``avg_entry_price`` and optionally
    ``side`` (``long``/``short``), ``asset_class`` and ``exchange``.

    A short may be given as a negative ``qty`` or as ``side: short`` with a positive one.
    Raises ``ValueError`` naming the bad entry.
    """
    positions: list[SimulatedPosition] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"position #{index + 1}: expected an object, got {item!r}")
        symbol = str(item.get("symbol", "")).strip().upper()
        where = f"position #{index + 1} ({symbol or 'no symbol'})"
        if _SYMBOL.fullmatch(symbol) is None:
            raise ValueError(f"{where}: 'symbol' must be a ticker")
        if symbol in seen:
            raise ValueError(f"{where}: more than one position for {symbol}")
        seen.add(symbol)
        for name in ("qty", "avg_entry_price"):
            if name not in item:
                raise ValueError(f"{where}: '{name}' is missing")
        qty = _decimal(item["qty"], f"{where} qty")
        price = _decimal(item["avg_entry_price"], f"{where} avg_entry_price")
        if qty == 0:
            raise ValueError(f"{where}: qty is 0 (a closed position is left out)")
        if price < 0:
            raise ValueError(f"{where}: avg_entry_price is negative")
        side = str(item.get("side", "short" if qty < 0 else "long")).lower()
        if side not in ("long", "short"):
            raise ValueError(f"{where}: side must be 'long' or 'short', got {side!r}")
        if qty < 0 and side == "long":
            raise ValueError(f"{where}: negative qty with side 'long'")
        positions.append(
            SimulatedPosition(
                symbol=symbol,
                qty=-abs(qty) if side == "short" else qty,
                avg_entry_price=price,
                asset_class=str(item.get("asset_class", "us_equity")),
                exchange=str(item.get("exchange", "NASDAQ")),
            )
        )
    return positions


def load_positions(path: str | Path) -> list[SimulatedPosition]:
    """Positions from a JSON file: an array of position objects, or ``{"positions": [...]}``.

    Raises ``ValueError`` naming the file and the problem.
    """
    try:
        data = _file_decoder.decode(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read positions file {path}: {exc.strerror or exc}") from exc
    except msgspec.DecodeError as exc:
        raise ValueError(f"positions file {path} is not JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("positions")
    if not isinstance(data, list):
        raise ValueError(f"positions file {path}: expected an array of positions")
    try:
        return parse_positions(data)
    except ValueError as exc:
        raise ValueError(f"positions file {path}: {exc}") from None


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


class SimulatorRest:
    """State and handlers of the REST endpoints; :class:`AlpacaSimulator` owns one.

    ``quote_of(symbol)`` returns the last quote sent for a symbol (bid ``bp`` / ask
    ``ap`` as exact decimals) or ``None``; ``start_price(symbol)`` its walk's start.
    """

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        quote_of: Callable[[str], Mapping[str, Any] | None],
        start_price: Callable[[str], Decimal],
        positions: Iterable[Mapping[str, Any] | SimulatedPosition] = (),
    ) -> None:
        self._api_key = api_key
        self._secret_key = secret_key
        self._quote_of = quote_of
        self._start_price = start_price
        self._positions: list[SimulatedPosition] = []
        self._previous_closes: dict[str, Decimal] = {}
        self._failures: dict[Endpoint, deque[_Failure]] = {
            "positions": deque(),
            "snapshots": deque(),
        }
        self._window_start = 0.0
        self._window_count = 0
        self.requests: list[tuple[str, int]] = []  # (path, status) of every REST request
        self.set_positions(positions)

    # -- state, for tests and the demo ----------------------------------------------------

    @property
    def positions(self) -> list[SimulatedPosition]:
        return list(self._positions)

    def set_positions(self, positions: Iterable[Mapping[str, Any] | SimulatedPosition]) -> None:
        """Replace the open positions (see :func:`parse_positions` for the mapping form)."""
        items = list(positions)
        ready = [p for p in items if isinstance(p, SimulatedPosition)]
        raw = [p for p in items if not isinstance(p, SimulatedPosition)]
        self._positions = sorted([*ready, *parse_positions(raw)], key=lambda p: p.symbol)

    def set_previous_close(self, symbol: str, price: Decimal | str) -> None:
        """Make the snapshots report ``price`` as the previous close of ``symbol``."""
        self._previous_closes[symbol.upper()] = _decimal(price, f"{symbol} previous close")

    def previous_close(self, symbol: str) -> Decimal:
        """The previous close the snapshots report for ``symbol``."""
        symbol = symbol.upper()
        price = self._previous_closes.get(symbol)
        return self._start_price(symbol) if price is None else price

    def fail(
        self,
        endpoint: Endpoint,
        status: int = 503,
        times: int = 1,
        *,
        retry_after: float | None = None,
        ratelimit_reset: float | None = None,
    ) -> None:
        """Answer the next ``times`` requests of ``endpoint`` with ``status``.

        ``retry_after`` adds a ``Retry-After`` header (seconds); ``ratelimit_reset``
        sets ``X-Ratelimit-Reset`` to that epoch time.
        """
        if not 400 <= status <= 599:
            raise ValueError(f"status must be an HTTP error status, got {status}")
        failure = _Failure(status, retry_after, ratelimit_reset)
        self._failures[endpoint].extend(failure for _ in range(times))

    def clear_failures(self) -> None:
        for queue in self._failures.values():
            queue.clear()

    def count(self, path: str) -> int:
        """How many requests reached ``path`` (whatever they were answered)."""
        return sum(1 for seen, _ in self.requests if seen == path)

    # -- HTTP ---------------------------------------------------------------------------

    def handle(self, request: Request) -> Response | None:
        """The answer to a REST request, or ``None`` when ``request`` is not one of ours."""
        parts = urlsplit(request.path)
        path = parts.path.rstrip("/") or "/"
        if path == POSITIONS_PATH:
            endpoint: Endpoint = "positions"
        elif path == SNAPSHOTS_PATH:
            endpoint = "snapshots"
        else:
            return None
        response = self._answer(endpoint, request, parse_qs(parts.query))
        self.requests.append((path, response.status_code))
        return response

    def _answer(
        self, endpoint: Endpoint, request: Request, query: dict[str, list[str]]
    ) -> Response:
        now = time.time()
        if now - self._window_start >= _RATE_WINDOW_S:
            self._window_start, self._window_count = now, 0
        self._window_count += 1
        limits = [
            ("X-Ratelimit-Limit", str(_RATE_LIMIT)),
            ("X-Ratelimit-Remaining", str(max(0, _RATE_LIMIT - self._window_count))),
            ("X-Ratelimit-Reset", str(int(self._window_start + _RATE_WINDOW_S))),
        ]
        failures = self._failures[endpoint]
        if failures:
            failure = failures.popleft()
            extra: list[tuple[str, str]] = []
            if failure.ratelimit_reset is not None:
                # Whole epoch seconds, as Alpaca sends it.
                reset = str(math.ceil(failure.ratelimit_reset))
                limits[2] = ("X-Ratelimit-Reset", reset)
            if failure.retry_after is not None:
                extra.append(("Retry-After", f"{failure.retry_after:g}"))
            return self._error(failure.status, limits + extra)
        headers = request.headers
        if (
            headers.get("APCA-API-KEY-ID") != self._api_key
            or headers.get("APCA-API-SECRET-KEY") != self._secret_key
        ):
            # The trading API says 401, the data API 403 for bad credentials (§9.1).
            return self._error(401 if endpoint == "positions" else 403, limits)
        if endpoint == "positions":
            return self._json(200, [self._position_json(p) for p in self._positions], limits)
        symbols = [s.strip().upper() for s in ",".join(query.get("symbols", [])).split(",")]
        symbols = [s for s in symbols if s]
        if not symbols:
            return self._error(400, limits, "symbols is required")
        bad = [s for s in symbols if _SYMBOL.fullmatch(s) is None]
        if bad:
            return self._error(400, limits, f"invalid symbol: {bad[0]}")
        return self._json(200, {s: self._snapshot(s) for s in dict.fromkeys(symbols)}, limits)

    def _current_price(self, symbol: str) -> Decimal:
        quote = self._quote_of(symbol)
        if quote is not None:
            bid, ask = quote.get("bp"), quote.get("ap")
            if isinstance(bid, Decimal) and isinstance(ask, Decimal):
                return (bid + ask) / 2
        return self.previous_close(symbol)

    def _position_json(self, position: SimulatedPosition) -> dict[str, Any]:
        qty = position.qty
        current = self._current_price(position.symbol)
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
        quote = self._quote_of(symbol)
        if quote is not None:
            snapshot["latestQuote"] = {
                k: quote[k]
                for k in ("t", "ax", "ap", "as", "bx", "bp", "bs", "c", "z")
                if k in quote
            }
        return snapshot

    def _json(self, status: int, body: object, headers: list[tuple[str, str]]) -> Response:
        payload = _encoder.encode(body)
        return Response(
            status,
            HTTPStatus(status).phrase,
            Headers(
                [
                    ("Date", email.utils.formatdate(usegmt=True)),
                    # One request per connection: this is a WebSocket server's HTTP hook.
                    ("Connection", "close"),
                    ("Content-Type", "application/json; charset=utf-8"),
                    ("Content-Length", str(len(payload))),
                    *headers,
                ]
            ),
            payload,
        )

    def _error(
        self, status: int, headers: list[tuple[str, str]], message: str | None = None
    ) -> Response:
        code, text = _ERROR_BODIES.get(status, (status * 100000, HTTPStatus(status).phrase))
        return self._json(status, {"code": code, "message": message or text}, headers)
