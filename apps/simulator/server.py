"""The Alpaca market-data WebSocket protocol, served on loopback for demos, dev and tests.

It speaks what ``stream.data.alpaca.markets`` speaks (see
``reference/alpaca-protocol.md`` §1-5): greeting, message auth with its timeout,
subscribe/unsubscribe answered with the full subscription set, control messages
alone in their frame, data batched, JSON text frames or msgpack binary frames chosen
by the handshake's ``Content-Type``. On top, test hooks inject the faults the real
service shows: auth refusals, refused subscriptions, error frames, malformed frames,
stalls and dropped connections. The same port answers the REST calls the service makes
(``/v2/positions``, ``/v2/stocks/snapshots``: :mod:`apps.simulator.rest`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import re
import time
from collections import deque
from collections.abc import Iterable, Mapping
from decimal import Decimal
from http import HTTPStatus
from typing import Any, Final, Self

import msgspec
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from apps.simulator.config import SimulatorConfig
from apps.simulator.quotes import (
    DEFAULT_UNIVERSE,
    JsonEncoder,
    MsgpackEncoder,
    QuoteGenerator,
    QuoteTick,
    WireEncoder,
    format_price,
    rfc3339_ns,
    start_price_cents,
    tick_to_dict,
)
from apps.simulator.rest import Endpoint, SimulatedPosition, SimulatorRest

__all__ = ["ERROR_MESSAGES", "AlpacaSimulator"]

logger = logging.getLogger(__name__)

# Documented error codes and their exact texts (reference §3).
ERROR_MESSAGES: Final[Mapping[int, str]] = {
    400: "invalid syntax",
    401: "not authenticated",
    402: "auth failed",
    403: "already authenticated",
    404: "auth timeout",
    405: "symbol limit exceeded",
    406: "connection limit exceeded",
    407: "slow client",
    408: "v2 not enabled",
    409: "insufficient subscription",
    410: "invalid subscribe action for this feed",
    411: "insufficient scope",
    412: "option messages are only available in MsgPack format",
    413: "star subscription is not allowed for option quotes",
    500: "internal error",
}
# Auth answers after which the session cannot continue; 406 and others leave the
# socket open, so a client may retry auth on it as the Go SDK does.
_FATAL_AUTH_CODES: Final = frozenset({402, 404, 408, 409, 411})

_PATH: Final = re.compile(r"/(?:v2|v1beta1)/[A-Za-z0-9_.\-]+/?")
_SYMBOL: Final = re.compile(r"[A-Z0-9][A-Z0-9./]{0,19}")
_WILDCARD: Final = "*"
# Channels a client subscribes; corrections and cancelErrors follow trades.
_CHANNELS: Final = ("trades", "quotes", "bars", "updatedBars", "dailyBars", "statuses", "lulds")

# Up to this many frames a second, each quote goes alone in its frame; beyond it,
# frames fill up to batch_size. Real Alpaca batches only under load, and a demo at
# 50 quotes/s should look like a live ticker rather than five bursts a second.
_UNBATCHED_FRAMES_PER_S: Final = 50.0
# After a hiccup the schedule catches up at most this far, then forgets the rest.
_MAX_BACKLOG_S: Final = 0.25
# Frames sent back to back before yielding to the loop, so one session cannot
# starve the readers and the other sessions.
_BURST_FRAMES: Final = 8
# A frame due sooner than this goes out now: event loops time in milliseconds (uvloop
# spins on shorter timers), and the fixed schedule keeps the average rate exact anyway.
_EARLY_S: Final = 0.001
_CLOSE_TIMEOUT_S: Final = 2.0
_SYMBOL_OF: Final = operator.itemgetter(0)
_DROP_WAIT_S: Final = 5.0


class _InvalidSyntax(Exception):
    pass


def _frame_size(rate: float, batch_size: int) -> int:
    return max(1, min(batch_size, int(rate / _UNBATCHED_FRAMES_PER_S)))


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _parse_symbols(value: object) -> list[str]:
    if not isinstance(value, list):
        raise _InvalidSyntax
    symbols: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise _InvalidSyntax
        # Case is forgiven; anything else that is not a ticker is a syntax error.
        symbol = item.upper()
        if symbol != _WILDCARD and _SYMBOL.fullmatch(symbol) is None:
            raise _InvalidSyntax
        symbols.append(symbol)
    return symbols


class _Session:
    """One client socket: protocol state, subscriptions and the data loop."""

    def __init__(self, sim: AlpacaSimulator, ws: ServerConnection, encoder: WireEncoder) -> None:
        self.sim = sim
        self.ws = ws
        self.encoder = encoder
        self.authenticated = False
        # dicts as insertion-ordered sets: acks list symbols in the order subscribed.
        self.subscriptions: dict[str, dict[str, None]] = {ch: {} for ch in _CHANNELS}
        self.quote_symbols: tuple[str, ...] = ()
        self.cursor = 0
        self.closed = asyncio.Event()
        self._waiter: asyncio.Future[None] | None = None

    # -- sending ---------------------------------------------------------------

    async def send_bytes(self, data: bytes) -> None:
        await self.ws.send(data, text=not self.encoder.binary)

    async def send_control(self, message: dict[str, Any]) -> None:
        await self.send_bytes(self.encoder.encode([message]))

    async def send_error(self, code: int, msg: str | None = None) -> None:
        text = ERROR_MESSAGES.get(code, "error") if msg is None else msg
        await self.send_control({"T": "error", "code": code, "msg": text})

    # -- data loop -------------------------------------------------------------

    def wake(self) -> None:
        if self._waiter is not None:
            _resolve(self._waiter)

    async def _sleep_until(self, when: float | None) -> None:
        # A sleep that wake() can cut short: rate, pause and subscription changes
        # take effect at once instead of after the current frame interval.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        handle = loop.call_at(when, _resolve, waiter) if when is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()

    def _streaming(self) -> bool:
        sim = self.sim
        return self.authenticated and sim.rate > 0 and not sim.paused and bool(self.quote_symbols)

    async def data_loop(self) -> None:
        loop = asyncio.get_running_loop()
        sim = self.sim
        epoch = -1
        start = interval = 0.0
        per_frame = frames = burst = backlog = 0
        try:
            while True:
                if not self._streaming():
                    epoch = -1
                    await self._sleep_until(None)
                    continue
                if epoch != sim._schedule_epoch:
                    # Frame k is due at start + k * interval: a fixed schedule on the
                    # monotonic clock, so sleep overshoot never accumulates into drift.
                    epoch = sim._schedule_epoch
                    per_frame = _frame_size(sim.rate, sim.batch_size)
                    interval = per_frame / sim.rate
                    backlog = max(1, int(_MAX_BACKLOG_S / interval))
                    start = loop.time()
                    frames = 0
                now = loop.time()
                due_at = start + frames * interval
                if now < due_at - _EARLY_S:
                    burst = 0
                    await self._sleep_until(due_at)
                    continue
                late = int((now - due_at) / interval)
                if late > backlog:
                    frames += late - backlog
                ticks, self.cursor = sim._generator.next_ticks(
                    self.quote_symbols, self.cursor, per_frame
                )
                ns = time.time_ns()
                await self.send_bytes(self.encoder.encode_ticks(ticks, ns))
                sim._record_ticks(ticks, ns)
                frames += 1
                burst += 1
                if burst >= _BURST_FRAMES:
                    burst = 0
                    await asyncio.sleep(0)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("simulator data loop failed; closing the session")
            await self.ws.close(1011, "internal error")

    # -- protocol --------------------------------------------------------------

    def _decode(self, message: str | bytes) -> Any:
        if isinstance(message, str):
            return msgspec.json.decode(message)
        # '{' and '[' would be a lone msgpack integer; anything else is a msgpack map.
        if message[:1] in (b"{", b"[", b" ", b"\n", b"\r", b"\t"):
            return msgspec.json.decode(message)
        return msgspec.msgpack.decode(message)

    async def handle(self, message: str | bytes) -> None:
        try:
            decoded = self._decode(message)
        except msgspec.DecodeError:
            await self.send_error(400)
            return
        if isinstance(decoded, dict):
            self.sim.client_messages.append(decoded)
        action = decoded.get("action") if isinstance(decoded, dict) else None
        if action == "auth":
            await self._auth(decoded)
        elif action in ("subscribe", "unsubscribe"):
            if not self.authenticated:
                await self.send_error(401)
                return
            try:
                await self._change_subscriptions(decoded, subscribe=action == "subscribe")
            except _InvalidSyntax:
                await self.send_error(400)
        else:
            await self.send_error(400)

    async def _auth(self, message: dict[str, Any]) -> None:
        sim = self.sim
        sim.auth_attempts += 1
        if self.authenticated:
            await self.send_error(403)
            return
        if sim._auth_failures:
            code = sim._auth_failures.popleft()
        elif message.get("key") != sim.config.api_key or message.get("secret") != (
            sim.config.secret_key
        ):
            code = 402
        elif (
            sim.config.connection_limit is not None
            and sim._authenticated_count() >= sim.config.connection_limit
        ):
            code = 406
        else:
            self.authenticated = True
            await self.send_control({"T": "success", "msg": "authenticated"})
            self.wake()
            return
        await self.send_error(code)
        if code in _FATAL_AUTH_CODES:
            await self.ws.close(1008, ERROR_MESSAGES.get(code, "error"))

    async def _change_subscriptions(self, message: dict[str, Any], *, subscribe: bool) -> None:
        sim = self.sim
        if subscribe and sim._subscribe_rejections:
            await self.send_error(sim._subscribe_rejections.popleft())
            return
        changes = {ch: _parse_symbols(message[ch]) for ch in _CHANNELS if ch in message}
        updated = {ch: dict(symbols) for ch, symbols in self.subscriptions.items()}
        for channel, symbols in changes.items():
            current = updated[channel]
            for symbol in symbols:
                if subscribe:
                    current[symbol] = None
                else:
                    current.pop(symbol, None)
        limit = sim.config.symbol_limit
        if subscribe and limit is not None:
            distinct = set().union(*(symbols.keys() for symbols in updated.values()))
            if len(distinct) > limit:
                await self.send_error(405)
                return
        self.subscriptions = updated
        quotes = updated["quotes"]
        expanded = dict.fromkeys(DEFAULT_UNIVERSE) if _WILDCARD in quotes else {}
        expanded.update((symbol, None) for symbol in quotes if symbol != _WILDCARD)
        self.quote_symbols = tuple(expanded)
        await self.send_control(self._ack())
        self.wake()

    def _ack(self) -> dict[str, Any]:
        subs = self.subscriptions
        trades = list(subs["trades"])
        ack: dict[str, Any] = {"T": "subscription"}
        ack.update((channel, list(subs[channel])) for channel in _CHANNELS)
        ack["corrections"] = trades
        ack["cancelErrors"] = list(trades)
        return ack

    async def run(self) -> None:
        sim = self.sim
        loop = asyncio.get_running_loop()
        deadline = loop.time() + sim.config.auth_timeout
        data_task = asyncio.create_task(self.data_loop(), name="simulator-data")
        try:
            await self.send_control({"T": "success", "msg": "connected"})
            while True:
                if self.authenticated:
                    message = await self.ws.recv()
                else:
                    try:
                        async with asyncio.timeout_at(deadline):
                            message = await self.ws.recv()
                    except TimeoutError:
                        await self.send_error(404)
                        await self.ws.close(1008, ERROR_MESSAGES[404])
                        return
                await self.handle(message)
        except ConnectionClosed:
            pass
        finally:
            data_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await data_task


class AlpacaSimulator:
    """A WebSocket server that speaks Alpaca's stock market-data protocol.

    Use as ``async with AlpacaSimulator(config) as sim:`` or ``start()``/``stop()``.
    Introspection attributes and fault-injection methods let tests drive a client
    through what the real service does.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.rate = self.config.rate
        self.batch_size = self.config.batch_size
        self.paused = False
        self.total_connections = 0
        self.auth_attempts = 0
        self.quotes_sent = 0
        self.client_messages: list[dict[str, Any]] = []
        self._last: dict[str, tuple[QuoteTick, int] | dict[str, Any]] = {}
        self._sessions: set[_Session] = set()
        self._generator = QuoteGenerator(self.config.seed)
        self._encoders: dict[bool, WireEncoder] = {False: JsonEncoder(), True: MsgpackEncoder()}
        self._auth_failures: deque[int] = deque()
        self._subscribe_rejections: deque[int] = deque()
        self._schedule_epoch = 0
        self._server: Server | None = None
        self._port = self.config.port
        # REST endpoints (/v2/positions, /v2/stocks/snapshots) on the same port.
        self.rest = SimulatorRest(
            self.config.api_key,
            self.config.secret_key,
            quote_of=self._last_quote,
            start_price=lambda symbol: Decimal(
                format_price(start_price_cents(symbol, self.config.seed))
            ),
            positions=self.config.positions,
        )

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting connections; ``port`` then tells the bound port."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        cfg = self.config
        self._server = await serve(
            self._handler,
            cfg.host,
            cfg.port,
            process_request=self._process_request,
            compression="deflate" if cfg.compression else None,
            ping_interval=cfg.ping_interval,
            ping_timeout=20,
            close_timeout=_CLOSE_TIMEOUT_S,
            logger=logger,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        logger.info("Alpaca simulator listening on %s", self.url())

    async def stop(self) -> None:
        """Close every connection (1001 going away) and the listener; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await server.wait_closed()
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
    def open_connections(self) -> int:
        """Sockets currently open (authenticated or not)."""
        return len(self._sessions)

    @property
    def authenticated_connections(self) -> int:
        """Sessions currently authenticated."""
        return self._authenticated_count()

    @property
    def subscribed_quotes(self) -> frozenset[str]:
        """Quote subscriptions (``"*"`` as sent) over all authenticated sessions."""
        return frozenset(
            symbol
            for session in self._sessions
            if session.authenticated
            for symbol in session.subscriptions["quotes"]
        )

    @property
    def last_quotes(self) -> dict[str, dict[str, Any]]:
        """Symbol -> the last quote object sent for it (prices as exact ``Decimal``)."""
        out: dict[str, dict[str, Any]] = {}
        for symbol, entry in self._last.items():
            out[symbol] = dict(entry) if isinstance(entry, dict) else tick_to_dict(*entry)
        return out

    def _last_quote(self, symbol: str) -> dict[str, Any] | None:
        entry = self._last.get(symbol)
        if entry is None:
            return None
        return dict(entry) if isinstance(entry, dict) else tick_to_dict(*entry)

    def _authenticated_count(self) -> int:
        return sum(1 for session in self._sessions if session.authenticated)

    def _record_ticks(self, ticks: list[QuoteTick], ns: int) -> None:
        count = len(ticks)
        self.quotes_sent += count
        # Iterated in C: this runs for every generated quote.
        stamped = zip(ticks, range(ns, ns + count), strict=True)
        self._last.update(zip(map(_SYMBOL_OF, ticks), stamped, strict=True))

    # -- control / fault injection ---------------------------------------------------

    def set_rate(self, rate: float, batch_size: int | None = None) -> None:
        """Change the generated quotes per second (and frame size); applies at once."""
        if not rate >= 0 or rate == float("inf"):
            raise ValueError(f"rate must be a finite number >= 0, got {rate}")
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.rate = float(rate)
        if batch_size is not None:
            self.batch_size = batch_size
        self._reschedule()

    def pause(self) -> None:
        """Stop generated data; sockets stay open and keepalive pings still flow (a stall)."""
        self.paused = True
        self._reschedule()

    def resume(self) -> None:
        """Restart generated data after :meth:`pause`, without a catch-up burst."""
        self.paused = False
        self._reschedule()

    def _reschedule(self) -> None:
        self._schedule_epoch += 1
        for session in self._sessions:
            session.wake()

    def fail_next_auth(self, *codes: int) -> None:
        """Answer the next auth attempts with these error codes, in order, then normally.

        402, 404, 408, 409 and 411 close the socket after the error; others keep it open.
        """
        self._auth_failures.extend(codes)

    def reject_next_subscribe(self, code: int = 405) -> None:
        """Answer the next subscribe request with this error; its subscriptions are not applied."""
        self._subscribe_rejections.append(code)

    def set_positions(self, positions: Iterable[Mapping[str, Any] | SimulatedPosition]) -> None:
        """Replace the positions ``GET /v2/positions`` reports (``[]``: all closed)."""
        self.rest.set_positions(positions)

    def fail_positions(
        self, status: int = 503, times: int = 1, *, retry_after: float | None = None
    ) -> None:
        """Answer the next ``times`` ``GET /v2/positions`` with ``status`` (5xx, 429, 401...)."""
        self.rest.fail("positions", status, times, retry_after=retry_after)

    def fail_rest(
        self,
        endpoint: Endpoint,
        status: int = 503,
        times: int = 1,
        *,
        retry_after: float | None = None,
        ratelimit_reset: float | None = None,
    ) -> None:
        """Like :meth:`fail_positions` for either endpoint, with the rate-limit reset too."""
        self.rest.fail(
            endpoint, status, times, retry_after=retry_after, ratelimit_reset=ratelimit_reset
        )

    async def send_quotes(self, quotes: Iterable[Mapping[str, Any]]) -> None:
        """Send these quote objects as one frame to every authenticated session.

        Missing ``T`` becomes ``"q"`` and missing ``t`` the current time. ``Decimal``
        values go out as JSON numbers with exactly their text (floats in msgpack);
        a string ``t`` becomes a msgpack Timestamp for msgpack sessions.
        """
        now = time.time_ns()
        frame: list[dict[str, Any]] = []
        for quote in quotes:
            message: dict[str, Any] = {"T": quote.get("T", "q")}
            message.update(quote)
            message.setdefault("t", rfc3339_ns(now))
            frame.append(message)
        await self._broadcast(lambda encoder: encoder.encode(frame))
        for message in frame:
            symbol = message.get("S")
            if isinstance(symbol, str):
                self._last[symbol] = message
        self.quotes_sent += len(frame)

    async def send_raw(self, frame: str | bytes) -> None:
        """Send exactly ``frame`` to every authenticated session: text if ``str``, else binary."""
        sessions = [s for s in self._sessions if s.authenticated]
        await self._gather(session.ws.send(frame) for session in sessions)

    async def send_error(self, code: int, msg: str | None = None) -> None:
        """Send an error frame to every authenticated session (documented text by default)."""
        text = ERROR_MESSAGES.get(code, "error") if msg is None else msg
        await self._broadcast(
            lambda encoder: encoder.encode([{"T": "error", "code": code, "msg": text}])
        )

    async def drop_connections(self, clean: bool = False) -> None:
        """Drop every open socket and wait until their sessions ended.

        ``clean=False`` aborts the TCP connection without a close frame, like a network
        failure; ``clean=True`` closes with code 1001 (going away).
        """
        sessions = list(self._sessions)
        if clean:
            await self._gather(session.ws.close(1001, "going away") for session in sessions)
        else:
            for session in sessions:
                session.ws.transport.abort()
        waits = [session.closed.wait() for session in sessions]
        if waits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_DROP_WAIT_S):
                    await asyncio.gather(*waits)

    async def _broadcast(self, encode: Any) -> None:
        sessions = [s for s in self._sessions if s.authenticated]
        frames: dict[bool, bytes] = {}
        sends = []
        for session in sessions:
            binary = session.encoder.binary
            if binary not in frames:
                frames[binary] = encode(self._encoders[binary])
            sends.append(session.send_bytes(frames[binary]))
        await self._gather(sends)

    @staticmethod
    async def _gather(sends: Iterable[Any]) -> None:
        # A socket that died meanwhile must not stop the frame reaching the others.
        results = await asyncio.gather(*sends, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception) and not isinstance(result, ConnectionClosed):
                logger.warning("simulator send failed: %r", result)

    # -- websockets callbacks ----------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        rest = self.rest.handle(request)
        if rest is not None:
            return rest
        path = request.path.partition("?")[0]
        if _PATH.fullmatch(path) is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        headers = ws.request.headers if ws.request is not None else Headers()
        binary = "msgpack" in headers.get("Content-Type", "").lower()
        session = _Session(self, ws, self._encoders[binary])
        self._sessions.add(session)
        self.total_connections += 1
        logger.debug("simulator session opened (%s)", "msgpack" if binary else "json")
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            session.closed.set()
            logger.debug("simulator session closed")
