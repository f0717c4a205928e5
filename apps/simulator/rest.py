"""The Alpaca REST endpoints the service reads, answered on the simulator's WebSocket port.

- ``GET /v2/positions`` (trading API): the open positions.
- ``GET /v2/stocks/snapshots?symbols=A,B`` (data API): a map of snapshots by symbol.
- ``GET /v2/stocks/quotes/latest?symbols=A,B`` (data API): each symbol's current quote.
- ``GET /v1beta3/crypto/{loc}/latest/quotes?symbols=BTC/USD`` (data API): each pair's.
  A pair on the stocks endpoint, or a stock on the crypto one, is a 400 (invalid
  symbol): a client that sends one to the wrong endpoint hears about it. Failures
  queued for ``latest_quotes`` answer whichever of the two is asked next.

This module routes a request to its endpoint, checks the ``APCA-API-KEY-ID`` /
``APCA-API-SECRET-KEY`` headers (401 on the trading API, 403 on the data API, as
Alpaca answers), plays the failures queued in the :class:`FaultPlan`, and writes the
JSON response with the ``X-Ratelimit-*`` headers. What the bodies hold is
:mod:`apps.simulator.rest_data`'s job.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from http import HTTPStatus
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

import msgspec
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from apps.simulator.faults import Endpoint, FaultPlan
from apps.simulator.positions import SimulatedPosition, load_positions, parse_positions
from apps.simulator.protocol import SYMBOL
from apps.simulator.rest_data import RestData

__all__ = [
    "CRYPTO_LATEST_QUOTES_PATH",
    "LATEST_QUOTES_PATH",
    "POSITIONS_PATH",
    "SNAPSHOTS_PATH",
    "Endpoint",
    "SimulatedPosition",
    "SimulatorRest",
    "load_positions",
    "parse_positions",
]

POSITIONS_PATH: Final = "/v2/positions"
SNAPSHOTS_PATH: Final = "/v2/stocks/snapshots"
LATEST_QUOTES_PATH: Final = "/v2/stocks/quotes/latest"
CRYPTO_LATEST_QUOTES_PATH: Final = "/v1beta3/crypto/us/latest/quotes"
_CRYPTO_LATEST: Final = re.compile(r"/v1beta3/crypto/[a-z0-9-]+/latest/quotes")

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


class SimulatorRest:
    """The REST endpoints; :class:`AlpacaSimulator` owns one.

    ``quote_of(symbol)`` returns the last quote sent for a symbol (bid ``bp`` / ask
    ``ap`` as exact decimals) or ``None``; ``start_price(symbol)`` its walk's start.
    ``faults`` holds the failures tests queue; a fresh plan when not given.
    """

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        quote_of: Callable[[str], Mapping[str, Any] | None],
        start_price: Callable[[str], Decimal],
        positions: Iterable[Mapping[str, Any] | SimulatedPosition] = (),
        faults: FaultPlan | None = None,
    ) -> None:
        self._api_key = api_key
        self._secret_key = secret_key
        self._data = RestData(quote_of=quote_of, start_price=start_price, positions=positions)
        # Pacing is the WebSocket's business; a standalone REST only needs the queues.
        self._faults = faults if faults is not None else FaultPlan(0.0, 1)
        self._window_start = 0.0
        self._window_count = 0
        self.requests: list[tuple[str, int]] = []  # (path, status) of every REST request

    # -- state, for tests and the demo ----------------------------------------------------

    @property
    def positions(self) -> list[SimulatedPosition]:
        """The open positions, by symbol."""
        return self._data.positions

    def set_positions(self, positions: Iterable[Mapping[str, Any] | SimulatedPosition]) -> None:
        """Replace the open positions (see :func:`parse_positions` for the mapping form)."""
        self._data.set_positions(positions)

    def set_previous_close(self, symbol: str, price: Decimal | str) -> None:
        """Make the snapshots report ``price`` as the previous close of ``symbol``."""
        self._data.set_previous_close(symbol, price)

    def previous_close(self, symbol: str) -> Decimal:
        """The previous close the snapshots report for ``symbol``."""
        return self._data.previous_close(symbol)

    def set_latest_quote(self, quote: Mapping[str, Any]) -> None:
        """Make ``quote`` the symbol's current quote for REST without streaming it."""
        self._data.set_latest_quote(quote)

    def latest_quote(self, symbol: str) -> dict[str, Any] | None:
        """The quote the REST endpoints take as ``symbol``'s current one (a copy), or ``None``."""
        quote = self._data.latest_quote(symbol.upper())
        return None if quote is None else dict(quote)

    def clear_failures(self) -> None:
        """Forget every queued failure."""
        self._faults.clear_rest_failures()

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
        elif path == LATEST_QUOTES_PATH or _CRYPTO_LATEST.fullmatch(path):
            endpoint = "latest_quotes"
        else:
            return None
        crypto = path.startswith("/v1beta3/")
        response = self._answer(endpoint, request, parse_qs(parts.query), crypto=crypto)
        self.requests.append((path, response.status_code))
        return response

    def _answer(
        self,
        endpoint: Endpoint,
        request: Request,
        query: dict[str, list[str]],
        *,
        crypto: bool = False,
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
        failure = self._faults.take_rest_failure(endpoint)
        if failure is not None:
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
            return self._json(200, self._data.positions_body(), limits)
        symbols = [s.strip().upper() for s in ",".join(query.get("symbols", [])).split(",")]
        symbols = [s for s in symbols if s]
        if not symbols:
            return self._error(400, limits, "symbols is required")
        bad = [s for s in symbols if SYMBOL.fullmatch(s) is None]
        if endpoint == "latest_quotes":  # each endpoint serves its own kind only
            bad += [s for s in symbols if ("/" in s) is not crypto]
        if bad:
            return self._error(400, limits, f"invalid symbol: {bad[0]}")
        if endpoint == "latest_quotes":
            body = self._data.latest_quotes_body(symbols, crypto=crypto)
            return self._json(200, body, limits)
        return self._json(200, self._data.snapshots_body(symbols), limits)

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
