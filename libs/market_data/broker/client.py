"""HTTP to Alpaca's REST APIs: :class:`AlpacaRestClient`, the calls the service needs.

Requests carry the ``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers, time out,
and are retried a bounded number of times on 429, 5xx and transport failures, waiting
what ``Retry-After`` or ``X-Ratelimit-Reset`` asks for (read by the shared
:func:`~libs.market_data.backoff.parse_retry_after`), else the
:class:`~libs.market_data.backoff.BackoffPolicy` delay. Failures surface as the
:class:`~libs.market_data.exceptions.BrokerAPIError` branch; 401/403 never retry.
Decoding the answers is :mod:`libs.market_data.broker.wire`'s job (docs/positions.md,
"The REST client").
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Final, Self
from urllib.parse import urlsplit

import httpx

from libs.market_data.backoff import BackoffPolicy, parse_retry_after
from libs.market_data.broker.models import LatestQuote, Position, PreviousClose
from libs.market_data.broker.wire import (
    decode_error,
    decode_latest_quotes,
    decode_positions,
    decode_previous_closes,
)
from libs.market_data.exceptions import (
    BrokerAPIError,
    BrokerAuthError,
    BrokerRateLimitError,
    BrokerUnavailableError,
)
from libs.market_data.symbols import is_crypto

__all__ = [
    "ALPACA_DATA_HOST",
    "ALPACA_PAPER_HOST",
    "LATEST_QUOTES_BATCH",
    "REST_FEEDS",
    "AlpacaRestClient",
]

logger = logging.getLogger(__name__)

ALPACA_PAPER_HOST: Final = "https://paper-api.alpaca.markets"
ALPACA_DATA_HOST: Final = "https://data.alpaca.markets"
# Feeds the data REST API accepts; the stream-only "test" feed is not one of them.
REST_FEEDS: Final = frozenset({"iex", "sip", "delayed_sip", "boats", "overnight", "otc"})

_RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
# Symbols per snapshots request: keeps the query string far below URL length limits.
_SNAPSHOT_CHUNK: Final = 100
# Symbols per latest-quotes request. Alpaca documents no cap; 100 keeps the URL near
# 600 characters and the answer near 15 KB, and covers the free plan's 30 streamed
# symbols in one call: the REST limit (200/min) is shared with order entry, so a
# gap fill must cost few calls (docs/architecture.md, "Gap fill").
LATEST_QUOTES_BATCH: Final = 100
_ERROR_TEXT_LIMIT: Final = 200


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
    body = decode_error(response.content)
    if body is None:
        text = response.text.strip()[:_ERROR_TEXT_LIMIT]
        return None, text or response.reason_phrase
    code, message = body
    return code, message or response.reason_phrase


class AlpacaRestClient:
    """The few Alpaca REST calls the service needs, on one pooled ``httpx.AsyncClient``.

    ``max_attempts`` bounds the tries of one call (429, 5xx and transport errors are
    retried); a wait the server asks for that is longer than ``max_retry_wait`` is not
    sat out: the call fails at once with ``retry_after`` set, so a caller on a schedule
    (the position sync) can come back later instead of blocking. Without a server wait
    the retries back off from ``retry_base_delay``, doubling up to ``max_retry_wait``.
    """

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        *,
        base_url: str = ALPACA_PAPER_HOST,
        data_base_url: str = ALPACA_DATA_HOST,
        feed: str | None = None,
        crypto_location: str = "us",
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
        if not 0 < retry_base_delay <= max_retry_wait:
            raise ValueError("retry delays need 0 < retry_base_delay <= max_retry_wait")
        self.base_url = base_url.rstrip("/")
        self.data_base_url = data_base_url.rstrip("/")
        self.feed = feed if feed in REST_FEEDS else None
        self.crypto_location = crypto_location  # ALPACA_CRYPTO_FEED: us, us-1, eu-1
        self.max_attempts = max_attempts
        self.max_retry_wait = max_retry_wait
        # No jitter: one client's few retries are not a crowd to spread out.
        self.backoff = BackoffPolicy(
            base=retry_base_delay, maximum=max_retry_wait, max_attempts=max_attempts, jitter=0.0
        )
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

        Symbols without data (unknown, or no previous bar) are absent from the result,
        and so are crypto pairs: the stocks endpoint does not serve them.
        """
        wanted = [s for s in dict.fromkeys(symbols) if not is_crypto(s)]
        closes: dict[str, PreviousClose] = {}
        what = "GET /v2/stocks/snapshots"
        for start in range(0, len(wanted), _SNAPSHOT_CHUNK):
            params = {"symbols": ",".join(wanted[start : start + _SNAPSHOT_CHUNK])}
            if self.feed is not None:
                params["feed"] = self.feed
            content = await self._get(f"{self.data_base_url}/v2/stocks/snapshots", params, what)
            closes.update(decode_previous_closes(content, what))
        return closes

    async def get_latest_quotes(self, symbols: Iterable[str]) -> dict[str, LatestQuote]:
        """Symbol -> latest quote: stocks from ``GET /v2/stocks/quotes/latest``, crypto
        pairs (``BTC/USD``) from ``GET /v1beta3/crypto/{loc}/latest/quotes``.

        One request per :data:`LATEST_QUOTES_BATCH` symbols of one kind (each retried as
        every call is); symbols without a quote are absent. Prices are exact decimals.
        """
        wanted = list(dict.fromkeys(symbols))
        stocks = [s for s in wanted if not is_crypto(s)]
        pairs = [s for s in wanted if is_crypto(s)]
        quotes = await self._latest(stocks, "/v2/stocks/quotes/latest", fractional=False)
        if pairs:
            path = f"/v1beta3/crypto/{self.crypto_location}/latest/quotes"
            quotes.update(await self._latest(pairs, path, fractional=True))
        return quotes

    async def get_latest_crypto_quotes(self, pairs: Iterable[str]) -> dict[str, LatestQuote]:
        """Pair -> latest quote from ``GET /v1beta3/crypto/{loc}/latest/quotes``; sizes
        are fractional ``Decimal`` s. Symbols that are no pair are not asked for."""
        return await self.get_latest_quotes(p for p in pairs if is_crypto(p))

    async def _latest(
        self, symbols: list[str], path: str, *, fractional: bool
    ) -> dict[str, LatestQuote]:
        quotes: dict[str, LatestQuote] = {}
        what = f"GET {path}"
        for start in range(0, len(symbols), LATEST_QUOTES_BATCH):
            params = {"symbols": ",".join(symbols[start : start + LATEST_QUOTES_BATCH])}
            if self.feed is not None and not fractional:  # the crypto API has no feed
                params["feed"] = self.feed
            content = await self._get(f"{self.data_base_url}{path}", params, what)
            quotes.update(decode_latest_quotes(content, what, fractional=fractional))
        return quotes

    # -- transport ----------------------------------------------------------------------------

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
                await asyncio.sleep(self.backoff.delay(attempt))
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
                    delay = self.backoff.delay(attempt) if wait is None else wait
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
