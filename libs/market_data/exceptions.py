"""The library's exception tree.

Callers never need to import a third-party exception: errors from websockets,
redis-py and msgspec are translated where they enter (``raise ... from exc``).

    MarketDataError
    ├── InvalidSymbolError            a ticker that is not one; never sent to the broker
    ├── SubscriberError               a PriceSubscriber gave up reconnecting to Redis
    ├── LeadershipError               a standby could not get a change to a live leader
    ├── QuoteHandlingError            a quote could not be cached/published
    │   └── QuoteValidationError      crossed, negative or malformed; carries ``reason``
    ├── StreamConnectionError         transport-level trouble (connect, handshake, closed)
    │   ├── HandshakeError            HTTP status instead of 101 (429, 5xx, 4xx); ``retry_after``
    │   └── ProtocolError             the server broke the protocol (bad greeting, timeouts)
    ├── AlpacaError                   an error frame from the server: ``code`` and ``msg``
    │   ├── AuthenticationError       402, 409, 410, 411: fatal until the configuration changes
    │   ├── ConnectionLimitError      406: another session holds the slot; wait and retry
    │   ├── SubscriptionError         405/400 refusing a subscribe; ``symbols`` names them
    │   └── SlowClientError           407: the server is about to drop us
    └── BrokerAPIError                a REST call failed: ``status``, ``code``, ``retry_after``
        ├── BrokerAuthError           401/403: keys refused or not permitted; retrying will not help
        ├── BrokerRateLimitError      429 still after the bounded retries
        ├── BrokerUnavailableError    5xx still after the retries, or no answer (connect, timeout)
        └── BrokerResponseError       an answer that is not what the API documents
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "AlpacaError",
    "AuthenticationError",
    "BrokerAPIError",
    "BrokerAuthError",
    "BrokerRateLimitError",
    "BrokerResponseError",
    "BrokerUnavailableError",
    "ConnectionLimitError",
    "HandshakeError",
    "InvalidSymbolError",
    "LeadershipError",
    "MarketDataError",
    "ProtocolError",
    "QuoteHandlingError",
    "QuoteValidationError",
    "SlowClientError",
    "StreamConnectionError",
    "SubscriberError",
    "SubscriptionError",
]


class MarketDataError(Exception):
    """Base of every error raised by ``libs.market_data``."""


class InvalidSymbolError(MarketDataError, ValueError):
    """A symbol is not a valid ticker."""

    def __init__(self, symbol: object, why: str) -> None:
        self.symbol = symbol
        self.why = why
        super().__init__(f"invalid symbol {symbol!r}: {why}")


class SubscriberError(MarketDataError):
    """A :class:`~libs.market_data.consumers.PriceSubscriber` gave up reconnecting."""


class LeadershipError(MarketDataError):
    """A standby could not hand a change to the leader: none live, or no answer in time."""


class QuoteHandlingError(MarketDataError):
    """A quote could not be handled (validated, cached or published)."""


class QuoteValidationError(QuoteHandlingError, ValueError):
    """A quote failed validation; ``reason`` is a short machine-readable cause."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class StreamConnectionError(MarketDataError):
    """The WebSocket could not be opened or was lost."""


class HandshakeError(StreamConnectionError):
    """The server answered the opening handshake with an HTTP error status."""

    def __init__(self, status: int, retry_after: float | None = None) -> None:
        self.status = status
        self.retry_after = retry_after
        suffix = f", retry after {retry_after:g}s" if retry_after is not None else ""
        super().__init__(f"handshake rejected with HTTP {status}{suffix}")


class ProtocolError(StreamConnectionError):
    """The server sent something the protocol does not allow at that point."""


class AlpacaError(MarketDataError):
    """An ``{"T":"error"}`` frame from the server."""

    def __init__(self, code: int, msg: str) -> None:
        self.code = code
        self.msg = msg
        super().__init__(f"Alpaca error {code}: {msg}")


class AuthenticationError(AlpacaError):
    """Credentials or plan refused (402, 409, 410, 411). Retrying will not help."""


class ConnectionLimitError(AlpacaError):
    """406: the account already holds its allowed number of connections."""


class SlowClientError(AlpacaError):
    """407: the server considers us too slow and may disconnect."""


class SubscriptionError(AlpacaError):
    """The server refused a subscribe request; ``symbols`` are the ones refused."""

    def __init__(self, code: int, msg: str, symbols: Iterable[str] = ()) -> None:
        self.symbols = sorted(symbols)
        super().__init__(code, msg)
        if self.symbols:
            self.args = (f"Alpaca error {code}: {msg} (refused: {', '.join(self.symbols)})",)


class BrokerAPIError(MarketDataError):
    """An Alpaca REST call failed.

    ``status`` is the HTTP status (``None`` when no answer came), ``code`` Alpaca's own
    error code from the body when it sent one, ``retry_after`` the seconds the server
    asked us to wait, if it said. Messages name the request, never a credential.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.status = status
        self.code = code
        self.retry_after = retry_after
        super().__init__(message)


class BrokerAuthError(BrokerAPIError):
    """401/403: the keys were refused or lack the permission. Retrying will not help."""


class BrokerRateLimitError(BrokerAPIError):
    """429 still after the bounded retries; ``retry_after`` says when to come back."""


class BrokerUnavailableError(BrokerAPIError):
    """5xx still after the retries, or no answer at all (refused, timed out)."""


class BrokerResponseError(BrokerAPIError):
    """An answer that is not what the API documents (bad JSON, wrong shape, bad numbers)."""
