"""The simulator's facade: one object that listens, routes each request and steers the rest.

:class:`AlpacaSimulator` serves what ``stream.data.alpaca.markets`` serves (see
docs/concepts/websocket-streaming.md) on loopback for demos, dev and tests: a
WebSocket on ``/v2/{feed}`` and ``/v1beta1/{feed}`` run by
:class:`~apps.simulator.session.Session`, and on the same port the REST calls the
service makes (:mod:`apps.simulator.rest`). Its methods are the test hooks: faults
(:mod:`apps.simulator.faults`), injected frames (:mod:`apps.simulator.broadcast`) and
introspection (:mod:`apps.simulator.registry`, :mod:`apps.simulator.record`). The socket
itself, and which request goes where, is :mod:`apps.simulator.listener`'s.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Self

from apps.simulator.broadcast import Broadcaster
from apps.simulator.config import SimulatorConfig
from apps.simulator.faults import FaultPlan
from apps.simulator.listener import Listener
from apps.simulator.market import build_universe
from apps.simulator.positions import SimulatedPosition
from apps.simulator.protocol import ERROR_MESSAGES
from apps.simulator.quotes import QuoteGenerator, format_price, rfc3339_ns, start_price_cents
from apps.simulator.record import WireRecord
from apps.simulator.registry import SessionRegistry
from apps.simulator.rest import SimulatorRest
from apps.simulator.session import SessionContext

__all__ = ["ERROR_MESSAGES", "AlpacaSimulator"]

logger = logging.getLogger(__name__)


class AlpacaSimulator:
    """A WebSocket server that speaks Alpaca's stock market-data protocol.

    Use as ``async with AlpacaSimulator(config) as sim:`` or ``start()``/``stop()``.
    Introspection attributes and fault-injection methods let tests drive a client
    through what the real service does.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        cfg = self.config
        self._registry = SessionRegistry()
        self._record = WireRecord()
        self._faults = FaultPlan(cfg.rate, cfg.batch_size, on_pacing_change=self._registry.wake_all)
        # REST faults, as the fault plan takes them: answer the next requests of an
        # endpoint with an error status (and Retry-After / X-Ratelimit-Reset).
        self.fail_rest = self._faults.fail_rest
        self._broadcaster = Broadcaster(self._registry, self._record)
        self._context = SessionContext(
            config=cfg,
            faults=self._faults,
            generator=QuoteGenerator(cfg.seed),
            record=self._record,
            registry=self._registry,
            universe=build_universe(cfg.universe_size, cfg.universe_skew, cfg.seed),
        )
        self._port = cfg.port
        # REST endpoints (/v2/positions, /v2/stocks/snapshots, /v2/stocks/quotes/latest)
        # on the same port.
        self.rest = SimulatorRest(
            cfg.api_key,
            cfg.secret_key,
            quote_of=self._record.last_quote,
            start_price=lambda symbol: Decimal(format_price(start_price_cents(symbol, cfg.seed))),
            positions=cfg.positions,
            faults=self._faults,
        )
        self._listener = Listener(self._context, self.rest)

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting connections; ``port`` then tells the bound port."""
        self._port = await self._listener.start()
        logger.info("Alpaca simulator listening on %s", self.url())

    async def stop(self) -> None:
        """Close every connection (1001 going away) and the listener; idempotent."""
        if await self._listener.stop():
            logger.info("Alpaca simulator stopped")

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound port once started (the configured one before)."""
        return self._port

    def crypto_url(self, location: str = "us") -> str:
        """``ws://host:port/v1beta3/crypto/{location}``: the crypto feed's path."""
        return self.url().removesuffix("/v2/iex") + f"/v1beta3/crypto/{location}"

    def url(self, feed: str = "iex") -> str:
        """``ws://host:port/v2/{feed}``, with a wildcard host mapped to loopback."""
        host = self.config.host
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self._port}/v2/{feed}"

    def http_url(self) -> str:
        """``http://host:port``: the REST base URL (trading and data APIs alike)."""
        return "http" + self.url().removeprefix("ws").removesuffix("/v2/iex")

    # -- introspection -------------------------------------------------------------

    @property
    def rate(self) -> float:
        """Generated quotes per second per session now."""
        return self._faults.pacing.rate

    @property
    def batch_size(self) -> int:
        """The most quotes in one generated frame now."""
        return self._faults.pacing.batch_size

    @property
    def paused(self) -> bool:
        """Whether generated data is stalled by :meth:`pause`."""
        return self._faults.pacing.paused

    @property
    def total_connections(self) -> int:
        """Sockets ever accepted."""
        return self._registry.total_connections

    @property
    def connection_times(self) -> list[float]:
        """When each socket was accepted (``time.monotonic()``), oldest first."""
        return list(self._registry.accepted_at)

    @property
    def open_connections(self) -> int:
        """Sockets currently open (authenticated or not)."""
        return self._registry.open_count

    @property
    def held_connections(self) -> int:
        """Connection-limit slots still held by dead sockets (``connection_release_delay``)."""
        return self._registry.held_count()

    @property
    def authenticated_connections(self) -> int:
        """Sessions currently authenticated."""
        return self._registry.authenticated_count()

    @property
    def subscribed_quotes(self) -> frozenset[str]:
        """Quote subscriptions (``"*"`` as sent) over all authenticated sessions."""
        return self._registry.subscribed_quotes()

    @property
    def auth_attempts(self) -> int:
        """Auth messages received over all sessions."""
        return self._record.auth_attempts

    @property
    def quotes_sent(self) -> int:
        """Quotes sent: generated ones per session, injected ones once per frame."""
        return self._record.quotes_sent

    @property
    def client_messages(self) -> list[dict[str, Any]]:
        """Every decoded client message (objects only), in arrival order."""
        return self._record.client_messages

    @property
    def last_quotes(self) -> dict[str, dict[str, Any]]:
        """Symbol -> the last quote object sent for it (prices as exact ``Decimal``)."""
        return self._record.last_quotes()

    # -- control / fault injection ---------------------------------------------------

    def set_rate(self, rate: float, batch_size: int | None = None) -> None:
        """Change the generated quotes per second (and frame size); applies at once."""
        self._faults.set_rate(rate, batch_size)

    def pause(self) -> None:
        """Stop generated data; sockets stay open and keepalive pings still flow (a stall)."""
        self._faults.pause()

    def resume(self) -> None:
        """Restart generated data after :meth:`pause`, without a catch-up burst."""
        self._faults.resume()

    def fail_next_auth(self, *codes: int) -> None:
        """Answer the next auth attempts with these error codes, in order, then normally.

        402, 404, 408, 409 and 411 close the socket after the error; others keep it open.
        """
        self._faults.fail_next_auth(*codes)

    def release_held_connections(self) -> None:
        """Free the slots dead sockets still hold, as when the broker finally notices."""
        self._registry.release_held()

    def reject_next_subscribe(self, code: int = 405) -> None:
        """Answer the next subscribe request with this error; its subscriptions are not applied."""
        self._faults.reject_next_subscribe(code)

    def set_positions(self, positions: Iterable[Mapping[str, Any] | SimulatedPosition]) -> None:
        """Replace the positions ``GET /v2/positions`` reports (``[]``: all closed)."""
        self.rest.set_positions(positions)

    def fail_positions(
        self, status: int = 503, times: int = 1, *, retry_after: float | None = None
    ) -> None:
        """Answer the next ``times`` ``GET /v2/positions`` with ``status`` (5xx, 429, 401...)."""
        self._faults.fail_rest("positions", status, times, retry_after=retry_after)

    def fail_latest_quotes(
        self, status: int = 503, times: int = 1, *, retry_after: float | None = None
    ) -> None:
        """Answer the next ``times`` ``GET /v2/stocks/quotes/latest`` with ``status``."""
        self._faults.fail_rest("latest_quotes", status, times, retry_after=retry_after)

    def set_latest_quote(
        self,
        symbol: str,
        bid: Decimal | str,
        ask: Decimal | str,
        *,
        bid_size: int = 1,
        ask_size: int = 1,
        timestamp: str | None = None,
    ) -> dict[str, Any]:
        """A quote made while nobody listened: REST reports it as ``symbol``'s current
        quote (until a newer one is sent), the stream never sends it. Returns it."""
        quote: dict[str, Any] = {
            "T": "q",
            "S": symbol.upper(),
            "bx": "Q",
            "bp": Decimal(bid),
            "bs": bid_size,
            "ax": "Q",
            "ap": Decimal(ask),
            "as": ask_size,
            "c": ["R"],
            "z": "C",
            "t": timestamp or rfc3339_ns(time.time_ns()),
        }
        self.rest.set_latest_quote(quote)
        return quote

    # -- injected frames -----------------------------------------------------------------

    async def send_quotes(self, quotes: Iterable[Mapping[str, Any]]) -> None:
        """Send these quote objects as one frame to every authenticated session.

        Missing ``T`` becomes ``"q"`` and missing ``t`` the current time. ``Decimal``
        values go out as JSON numbers with exactly their text (floats in msgpack);
        a string ``t`` becomes a msgpack Timestamp for msgpack sessions.
        """
        await self._broadcaster.send_quotes(quotes)

    async def send_raw(self, frame: str | bytes) -> None:
        """Send exactly ``frame`` to every authenticated session: text if ``str``, else binary."""
        await self._broadcaster.send_raw(frame)

    async def send_error(self, code: int, msg: str | None = None) -> None:
        """Send an error frame to every authenticated session (documented text by default)."""
        await self._broadcaster.send_error(code, msg)

    async def drop_connections(self, clean: bool = False) -> None:
        """Drop every open socket and wait until their sessions ended.

        ``clean=False`` aborts the TCP connection without a close frame, like a network
        failure; ``clean=True`` closes with code 1001 (going away).
        """
        await self._broadcaster.drop_connections(clean)
