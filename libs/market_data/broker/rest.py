"""Open positions and previous closes from Alpaca's REST APIs, with exact decimals.

``GET {ALPACA_BASE_URL}/v2/positions`` sends every number as a JSON string and
``GET {ALPACA_DATA_BASE_URL}/v2/stocks/snapshots`` as JSON numbers; both are decoded by
msgspec straight from the response bytes into :class:`~decimal.Decimal`, so no price
ever passes through a binary float (``response.json()`` would make floats).

Requests carry the ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers, time out,
and are retried a bounded number of times on 429, 5xx and transport failures, waiting
what ``Retry-After`` or ``X-Ratelimit-Reset`` asks for. Failures surface as the
:class:`~libs.market_data.exceptions.BrokerAPIError` branch; 401/403 never retry.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from enum import StrEnum
from typing import Final, Protocol, Self
from urllib.parse import urlsplit

import httpx
import msgspec

from libs.market_data.backoff import parse_retry_after
from libs.market_data.exceptions import (
    BrokerAPIError,
    BrokerAuthError,
    BrokerRateLimitError,
    BrokerResponseError,
    BrokerUnavailableError,
)

__all__ = [
    "ALPACA_DATA_HOST",
    "ALPACA_PAPER_HOST",
    "REST_FEEDS",
    "AlpacaRestClient",
    "Position",
    "PositionSide",
    "PositionsReader",
    "PreviousClose",
    "PreviousCloseCache",
    "RecentPositions",
    "decode_positions",
]

logger = logging.getLogger(__name__)

ALPACA_PAPER_HOST: Final = "https://paper-api.alpaca.markets"
ALPACA_DATA_HOST: Final = "https://data.alpaca.markets"
# Feeds the data REST API accepts; the stream-only "test" feed is not one of them.
REST_FEEDS: Final = frozenset({"iex", "sip", "delayed_sip", "boats", "overnight", "otc"})

_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
# Symbols per snapshots request: keeps the query string far below URL length limits.
_SNAPSHOT_CHUNK: Final = 100
_ERROR_TEXT_LIMIT: Final = 200


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"


class Position(msgspec.Struct, frozen=True, kw_only=True):
    """An open position. ``qty`` is signed: negative for a short, as Alpaca reports it.

    The ``cost_basis`` ... ``unrealized_pl`` fields are the broker's own figures, kept for
    reference; real-time P&L is computed from the cache (:mod:`libs.market_data.pnl.compute`).
    """

    symbol: str
    side: PositionSide
    qty: Decimal
    avg_entry_price: Decimal
    asset_class: str = ""
    exchange: str = ""
    asset_id: str = ""
    cost_basis: Decimal | None = None
    market_value: Decimal | None = None
    current_price: Decimal | None = None
    lastday_price: Decimal | None = None
    unrealized_pl: Decimal | None = None


class PreviousClose(msgspec.Struct, frozen=True):
    """The close of the previous daily bar; ``timestamp`` is that bar's start (RFC 3339)."""

    price: Decimal
    timestamp: str


class PositionsReader(Protocol):
    """Anything that can list open positions (the REST client; a test double in theory)."""

    async def get_positions(self) -> list[Position]: ...


# -- wire shapes (only the fields we read; unknown fields are ignored) ------------------------


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


class _WireError(msgspec.Struct):
    code: int | None = None
    message: str | None = None


_positions_decoder: Final = msgspec.json.Decoder(list[_WirePosition])
_snapshots_decoder: Final = msgspec.json.Decoder(dict[str, _WireSnapshot | None])
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
        symbol=symbol,
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


def _parse_wait(headers: httpx.Headers, status: int, now: float) -> float | None:
    """Seconds the server asks us to wait: ``Retry-After``, or for a 429 the time until
    ``X-Ratelimit-Reset`` (sent on every answer, it means nothing for a 5xx)."""
    wait = parse_retry_after(headers.get("Retry-After"), now)
    if wait is not None:
        return wait
    reset = headers.get("X-Ratelimit-Reset")
    if reset is not None and status == 429:
        try:
            # Epoch seconds (Alpaca staff on the forum); the limit window ends then.
            return max(0.0, float(reset) - now)
        except ValueError:
            return None
    return None


def _error_detail(response: httpx.Response) -> tuple[int | None, str]:
    """Alpaca's ``{"code", "message"}`` error body, or the start of whatever came."""
    try:
        body = _error_decoder.decode(response.content)
    except msgspec.MsgspecError:
        text = response.text.strip()[:_ERROR_TEXT_LIMIT]
        return None, text or response.reason_phrase
    return body.code, body.message or response.reason_phrase


class AlpacaRestClient:
    """The few Alpaca REST calls the service needs, on one pooled ``httpx.AsyncClient``.

    ``max_attempts`` bounds the tries of one call (429, 5xx and transport errors are
    retried); a wait the server asks for that is longer than ``max_retry_wait`` is not
    sat out: the call fails at once with ``retry_after`` set, so a caller on a schedule
    (the position sync) can come back later instead of blocking.
    """

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        base_url: str = ALPACA_PAPER_HOST,
        data_base_url: str = ALPACA_DATA_HOST,
        feed: str | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
        max_retry_wait: float = 5.0,
        retry_base_delay: float = 0.5,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")
        if not timeout > 0:
            raise ValueError("timeout must be > 0")
        self.base_url = base_url.rstrip("/")
        self.data_base_url = data_base_url.rstrip("/")
        self.feed = feed if feed in REST_FEEDS else None
        self.max_attempts = max_attempts
        self.max_retry_wait = max_retry_wait
        self.retry_base_delay = retry_base_delay
        self.requests_sent = 0
        self._client = httpx.AsyncClient(
            headers={
                "APCA-API-KEY-ID": api_key,
                "APCA-API-SECRET-KEY": secret_key,
                "Accept": "application/json",
                "User-Agent": "market-data-service",
            },
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,  # a redirect would carry the key headers elsewhere
            transport=transport,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- calls ------------------------------------------------------------------------------

    async def get_positions(self) -> list[Position]:
        """Every open position of the account (``GET /v2/positions``)."""
        content = await self._get(f"{self.base_url}/v2/positions", None, "GET /v2/positions")
        return decode_positions(content)

    async def get_previous_closes(self, symbols: Iterable[str]) -> dict[str, PreviousClose]:
        """Symbol -> close of its previous daily bar, from ``GET /v2/stocks/snapshots``.

        Symbols without data (unknown, or no previous bar) are absent from the result.
        """
        wanted = list(dict.fromkeys(symbols))
        closes: dict[str, PreviousClose] = {}
        what = "GET /v2/stocks/snapshots"
        for start in range(0, len(wanted), _SNAPSHOT_CHUNK):
            params = {"symbols": ",".join(wanted[start : start + _SNAPSHOT_CHUNK])}
            if self.feed is not None:
                params["feed"] = self.feed
            content = await self._get(f"{self.data_base_url}/v2/stocks/snapshots", params, what)
            try:
                snapshots = _snapshots_decoder.decode(content)
            except msgspec.MsgspecError as exc:
                raise BrokerResponseError(f"{what}: unreadable answer: {exc}") from exc
            for symbol, snapshot in snapshots.items():
                bar = snapshot.prev_daily_bar if snapshot is not None else None
                if bar is None:
                    continue
                if not bar.c.is_finite() or bar.c <= 0:
                    logger.warning("%s: ignoring previous close %s of %s", what, bar.c, symbol)
                    continue
                closes[symbol] = PreviousClose(bar.c, bar.t)
        return closes

    # -- transport ----------------------------------------------------------------------------

    def _backoff(self, attempt: int) -> float:
        return float(min(self.retry_base_delay * 2 ** (attempt - 1), self.max_retry_wait))

    async def _get(self, url: str, params: Mapping[str, str] | None, what: str) -> bytes:
        host = urlsplit(url).netloc
        for attempt in range(1, self.max_attempts + 1):
            last = attempt == self.max_attempts
            try:
                self.requests_sent += 1
                response = await self._client.get(url, params=params)
            except httpx.TransportError as exc:
                # Connect refused, DNS, timeouts, a dropped connection: nothing answered.
                if last:
                    raise BrokerUnavailableError(
                        f"{what}: no answer from {host} after {attempt} attempts: {exc!r}"
                    ) from exc
                await asyncio.sleep(self._backoff(attempt))
                continue
            status = response.status_code
            if response.is_success:
                return response.content
            code, message = _error_detail(response)
            if status in (401, 403):
                raise BrokerAuthError(
                    f"{what}: {host} refused the credentials (HTTP {status}: {message}); "
                    "check ALPACA_API_KEY / ALPACA_SECRET_KEY and the account's permissions",
                    status=status,
                    code=code,
                )
            if status in _RETRY_STATUSES:
                wait = _parse_wait(response.headers, status, time.time())
                if not last and (wait is None or wait <= self.max_retry_wait):
                    delay = self._backoff(attempt) if wait is None else wait
                    logger.info("%s: HTTP %d, retrying in %.2fs", what, status, delay)
                    await asyncio.sleep(delay)
                    continue
                error = BrokerRateLimitError if status == 429 else BrokerUnavailableError
                suffix = f", retry after {wait:.1f}s" if wait is not None else ""
                raise error(
                    f"{what}: HTTP {status} from {host} ({message}) after {attempt} "
                    f"attempt{'s' if attempt > 1 else ''}{suffix}",
                    status=status,
                    code=code,
                    retry_after=wait,
                )
            raise BrokerAPIError(
                f"{what}: HTTP {status} from {host}: {message}", status=status, code=code
            )
        raise AssertionError("unreachable")  # pragma: no cover


class PreviousCloseCache:
    """Previous closes kept ``ttl`` seconds: they change once a day, and a busy P&L
    endpoint must not spend the data API's rate limit asking for them again and again."""

    def __init__(self, client: AlpacaRestClient, ttl: float = 300.0) -> None:
        self._client = client
        self._ttl = ttl
        self._entries: dict[str, tuple[float, PreviousClose]] = {}

    async def get(self, symbols: Iterable[str]) -> dict[str, PreviousClose]:
        """Closes of ``symbols`` (absent where the data API has none); may raise
        :class:`~libs.market_data.exceptions.BrokerAPIError`."""
        now = time.monotonic()
        found: dict[str, PreviousClose] = {}
        missing: list[str] = []
        for symbol in dict.fromkeys(symbols):
            entry = self._entries.get(symbol)
            if entry is not None and now - entry[0] < self._ttl:
                found[symbol] = entry[1]
            else:
                missing.append(symbol)
        if missing:
            fetched = await self._client.get_previous_closes(missing)
            for symbol, close in fetched.items():
                self._entries[symbol] = (now, close)
            found.update((s, fetched[s]) for s in missing if s in fetched)
        return found

    def clear(self) -> None:
        self._entries.clear()


class RecentPositions:
    """Positions read at most once per ``max_age`` seconds, one read in flight at a time.

    The trading API allows 200 requests a minute per account, shared with whatever
    places the orders: a P&L endpoint polled by several screens must not spend them.
    Failures are not kept: the next call asks again.
    """

    def __init__(self, reader: PositionsReader, max_age: float = 1.0) -> None:
        self._reader = reader
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._value: tuple[list[Position], float] | None = None
        self._read_at = 0.0  # monotonic

    async def get(self) -> tuple[list[Position], float]:
        """The positions and when they were read (epoch seconds)."""
        async with self._lock:
            if self._value is not None and time.monotonic() - self._read_at < self._max_age:
                return self._value
            positions = await self._reader.get_positions()
            self._value = (positions, time.time())
            self._read_at = time.monotonic()
            return self._value
