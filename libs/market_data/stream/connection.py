"""The asyncio loop around one reconnecting Alpaca stream: sockets, timers, backoff.

The decisions live in sans-I/O or pure modules: the protocol state and the error-code map
in :mod:`~libs.market_data.stream.session`, retry or give up in
:mod:`~libs.market_data.stream.failures`, stall detection in
:mod:`~libs.market_data.stream.clock`. This module runs them: it opens and closes sockets
(:mod:`~libs.market_data.stream.transport`), watches each for stalls, hands subscription
changes to :mod:`~libs.market_data.stream.changes`, and waits out the backoff. Reading a
socket (market data to ``on_frame``, control messages to the session, subscription
replies to their requester) is its base's (:mod:`~libs.market_data.stream.reader`); the
state, the counters and the notices sent through ``on_notice`` are that base's base's
(:mod:`~libs.market_data.stream.status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Set

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from libs.market_data import defaults
from libs.market_data.backoff import BackoffPolicy
from libs.market_data.exceptions import AlpacaError, ProtocolError, StreamConnectionError
from libs.market_data.stream.changes import SubscriptionChanges
from libs.market_data.stream.clock import DataClock, StallDetected
from libs.market_data.stream.failures import Ended, RetryPolicy, SteadyRetry, classify
from libs.market_data.stream.protocol import DecodedFrame, decode_stock_frame
from libs.market_data.stream.reader import FrameReader
from libs.market_data.stream.records import ConnectionState, StatusNotice, connected_notice
from libs.market_data.stream.session import FATAL_ERROR_CODES, Ready, StreamSession
from libs.market_data.stream.transport import connect_options, establish, open_socket

__all__ = ["FATAL_ERROR_CODES", "AlpacaConnection", "ConnectionState"]

logger = logging.getLogger(__name__)


class AlpacaConnection(FrameReader):
    """A reconnecting Alpaca market-data session (one feed: stocks or crypto)."""

    def __init__(
        self,
        url: str,
        api_key: str,
        secret_key: str,
        *,
        on_frame: Callable[[DecodedFrame], Awaitable[None]],
        backoff: BackoffPolicy | None = None,
        step_timeout: float = defaults.STEP_TIMEOUT,
        ping_interval: float | None = 10.0,
        ping_timeout: float | None = 20.0,
        max_frame_size: int = 16 * 1024 * 1024,
        compression: str | None = "deflate",
        stall_timeout: float | None = defaults.STALL_TIMEOUT,
        on_notice: Callable[[StatusNotice], None] | None = None,
        decode: Callable[[bytes | str], DecodedFrame] = decode_stock_frame,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(
            url,
            StreamSession(api_key, secret_key),
            DataClock(stall_timeout),
            backoff or BackoffPolicy(),
            on_notice,
            decode=decode,
            on_frame=on_frame,
            step_timeout=step_timeout,
        )
        # When to try again: the stream chooses (a leader's, docs/leadership.md).
        self._retry: RetryPolicy = SteadyRetry(self.backoff) if retry is None else retry
        self._reached = False  # this socket's session was established
        self._connect_options = connect_options(
            step_timeout=step_timeout,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            max_frame_size=max_frame_size,
            compression=compression,
        )
        self._ws: ClientConnection | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._changes = SubscriptionChanges(self._session, self._live_socket, step_timeout)
        self._attempt_task: asyncio.Future[None] | None = None
        self._stall: StallDetected | None = None  # set when the clock closed this socket
        # Set while a session is established (its subscriptions acknowledged).
        self.established = asyncio.Event()

    # -- reading it ---------------------------------------------------------------------

    @property
    def desired(self) -> Set[str]:
        """The symbols wanted: a live read-only view, the same object for the whole life."""
        return self._session.desired

    @property
    def stall_limit(self) -> float | None:
        """The silence the next socket is allowed (doubled after silent sockets)."""
        return self.clock.limit(self.last_data_at)

    # -- driving it ---------------------------------------------------------------------

    def reset(self) -> None:
        """Forget an earlier :meth:`stop`, so :meth:`run` can be used again."""
        self._stopping = False

    def resume_gap(self, disconnected_at: float) -> None:
        """Announce the next connection as a reconnect after a gap since this wall clock
        time (the heartbeat of a run that crashed)."""
        self.disconnected_at = disconnected_at

    async def run(self) -> None:
        """Hold the session until :meth:`stop`; raise when giving up for good.

        A :meth:`stop` that came before (or while :meth:`reset` had not been called
        since) makes this return at once.
        """
        self._retry.begin(time.monotonic())
        while not self._stopping:
            started = time.monotonic()
            self._reached = False
            failure: StreamConnectionError | AlpacaError | None = None
            attempt = asyncio.ensure_future(self._attempt())
            self._attempt_task = attempt
            try:
                await attempt
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not self._stopping or (task is not None and task.cancelling()):
                    raise
                break  # stop() cancelled an attempt that had no socket to close yet
            except (StreamConnectionError, AlpacaError) as exc:
                failure = exc
            finally:
                self._attempt_task = None
            verdict = classify(failure)
            if failure is not None and verdict.fatal:
                self._fail(f"{failure} (not retrying: {verdict.hint})")
                raise failure
            self.last_error = str(failure) if failure else "server closed the connection"
            if self._stopping:
                break
            now = time.monotonic()
            retry = self._retry.plan(
                Ended(verdict, self.reconnect_attempts, now - started, self._reached, now)
            )
            self.reconnect_attempts = retry.attempt
            if retry.delay is None:
                self._fail(
                    f"gave up after {self.backoff.max_attempts} reconnect attempts; "
                    f"last error: {self.last_error}"
                )
                raise StreamConnectionError(self.last_error or "gave up")
            self._reconnecting(verdict.cause, retry.delay)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(retry.delay):
                    await self._wake.wait()
        self._set_state(ConnectionState.STOPPED)

    async def stop(self) -> None:
        """Close the socket with a close frame (1000) and make :meth:`run` return."""
        self._stopping = True
        self._wake.set()
        ws = self._ws
        if ws is not None:
            await ws.close()
        elif self._attempt_task is not None:
            # Still connecting: nothing to send a close frame on, so abandon the attempt.
            self._attempt_task.cancel()
        if self._state is not ConnectionState.FAILED:
            self._set_state(ConnectionState.STOPPED)

    async def subscribe(self, symbols: Iterable[str]) -> list[str]:
        """Add symbols; if connected, wait for the server's ack. Returns those added."""
        return await self._changes.subscribe(symbols)

    async def unsubscribe(self, symbols: Iterable[str]) -> list[str]:
        """Remove symbols (quotes still in flight for them are dropped at once)."""
        return await self._changes.unsubscribe(symbols)

    # -- one socket ---------------------------------------------------------------------

    def _live_socket(self) -> ClientConnection | None:
        return self._ws if self._state is ConnectionState.CONNECTED else None

    async def _attempt(self) -> None:
        """One socket's life: open, handshake, read. It only ever ends by raising."""
        self._set_state(ConnectionState.CONNECTING)
        ws = await open_socket(self.url, self._connect_options)
        self._ws = ws
        self._stall = None
        self.connections_opened += 1
        self._session.connection_opened()
        try:
            await establish(
                ws, self._session, self._next_control, self._changes.lock, self._established
            )
            logger.info(
                "market data stream connected to %s (%d symbols)",
                self.url,
                len(self._session.desired),
            )
            self._notice(connected_notice(self.url, self._session.desired, self.disconnected_at))
            clock = None
            if self.clock.enabled:
                clock = asyncio.create_task(self._watch_clock(ws), name="market-data-clock")
            try:
                await self._read_loop(ws)
            finally:
                if clock is not None:
                    clock.cancel()
        except ConnectionClosed as exc:
            if self._stall is not None:
                raise self._stall from exc
            raise StreamConnectionError(f"connection closed: {exc}") from exc
        except TimeoutError as exc:
            raise ProtocolError("server did not answer in time") from exc
        finally:
            self._ws = None
            self.established.clear()
            self._session.connection_lost()
            if self._state is ConnectionState.CONNECTED and not self._stopping:
                self._set_state(ConnectionState.RECONNECTING)
            if self.connected_since is not None and not self._stopping:
                self.disconnected_at = time.time()
                self._notice(StatusNotice("stream.disconnected", {"url": self.url}))
            self.connected_since = None
            self._changes.socket_lost()
            with contextlib.suppress(Exception):
                await ws.close()

    def _established(self, ready: Ready) -> None:
        if ready.refused is not None:
            self.last_error = str(ready.refused)
            logger.error("resubscribe refused after connecting: %s", ready.refused)
        self._set_state(ConnectionState.CONNECTED)
        self._reached = True
        self.connected_since = time.time()
        self.established.set()

    async def _watch_clock(self, ws: ClientConnection) -> None:
        """Close a socket that stays silent while subscribed (pings alone prove nothing)."""
        session = self._session
        stall = await self.clock.watch(lambda: self.last_data_at, lambda: bool(session.desired))
        self._stall = stall
        logger.warning(
            "%s; reconnecting (next stall check after %.0fs of silence)", stall, stall.next_limit
        )
        if not self._stopping:
            # Not connected from this moment: nothing may be sent on a closing socket.
            self._set_state(ConnectionState.RECONNECTING)
        await ws.close(code=1000, reason="no data")
