"""One reconnecting session with Alpaca's market-data stream, over ``websockets``.

Owns the socket, the handshake (greeting, auth, subscription ack, each with a
timeout), the subscription state (what we want vs what the server confirmed) and the
reconnect policy. Market data is handed to ``on_frame``; everything else stays here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from enum import StrEnum
from typing import Any, Final

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.version import version as websockets_version

from libs.market_data.backoff import BackoffPolicy, parse_retry_after
from libs.market_data.exceptions import (
    AlpacaError,
    AuthenticationError,
    ConnectionLimitError,
    HandshakeError,
    ProtocolError,
    SlowClientError,
    StreamConnectionError,
    SubscriptionError,
)
from libs.market_data.stream.protocol import (
    ControlMessage,
    DecodedFrame,
    ErrorMessage,
    SubscriptionAck,
    SuccessMessage,
    decode_frame,
    encode_auth,
    encode_subscription,
)

__all__ = ["FATAL_ERROR_CODES", "AlpacaConnection", "ConnectionState"]

logger = logging.getLogger(__name__)

# Refused credentials, plan or scope: reconnecting cannot fix these.
FATAL_ERROR_CODES: Final = frozenset({402, 409, 410, 411})
# Unsolicited error frames after which the session is given up and redone.
_RECONNECT_CODES: Final = frozenset({407, 500})
_MAX_STALL_TIMEOUT: Final = 3600.0
# Codes Alpaca documents; anything else is labelled "alpaca_other" (bounded labels).
_KNOWN_CODES: Final = frozenset({*range(400, 414), 500})
# A session that stayed up this long counts as recovered even if no data came
# (nothing subscribed, or a quiet feed), so rare drops never exhaust the attempts.
_STABLE_AFTER: Final = 60.0


class _AuthFrameRedactor(logging.Filter):
    """Blanks the frame websockets logs at DEBUG when it sends the auth message."""

    _AUTH = re.compile(r"action.{0,8}?auth", re.DOTALL)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG and self._AUTH.search(record.getMessage()):
            record.msg, record.args = "> (the auth message: redacted)", ()
        return True


# websockets logs every frame at DEBUG, the auth message with the key and secret too:
# our connections log through this logger, which never lets that frame through.
_WIRE_LOGGER: Final = logging.getLogger("libs.market_data.wire")
_WIRE_LOGGER.addFilter(_AuthFrameRedactor())


class ConnectionState(StrEnum):
    IDLE = "idle"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    FAILED = "failed"
    STOPPED = "stopped"


def _alpaca_error(message: ErrorMessage, symbols: Iterable[str] = ()) -> AlpacaError:
    code, msg = message.code, message.msg
    if code in FATAL_ERROR_CODES:
        return AuthenticationError(code, msg)
    if code == 406:
        return ConnectionLimitError(code, msg)
    if code == 407:
        return SlowClientError(code, msg)
    if code in (400, 405):
        return SubscriptionError(code, msg, symbols)
    return AlpacaError(code, msg)


def _reconnect_cause(failure: Exception | None, *, stalled: bool) -> str:
    """A short, bounded name for why a session ended (a metric label, a log field)."""
    if stalled:
        return "stall"  # our data clock closed a silent socket
    if failure is None:
        return "closed"  # the server ended the session without an error
    if isinstance(failure, AlpacaError):
        return f"alpaca_{failure.code}" if failure.code in _KNOWN_CODES else "alpaca_other"
    if isinstance(failure, HandshakeError):
        return "handshake"
    cause = failure.__cause__
    if isinstance(cause, ConnectionClosed):
        return "closed"
    if isinstance(cause, TimeoutError):
        return "timeout"
    if isinstance(failure, ProtocolError):
        return "protocol"
    return "connect"


def _retry_after(exc: InvalidStatus) -> float | None:
    return parse_retry_after(exc.response.headers.get("Retry-After"), time.time())


class AlpacaConnection:
    """A reconnecting Alpaca market-data session for the quotes channel."""

    def __init__(
        self,
        url: str,
        api_key: str,
        secret_key: str,
        *,
        on_frame: Callable[[DecodedFrame], Awaitable[None]],
        backoff: BackoffPolicy | None = None,
        step_timeout: float = 10.0,
        ping_interval: float | None = 10.0,
        ping_timeout: float | None = 20.0,
        max_frame_size: int = 16 * 1024 * 1024,
        compression: str | None = "deflate",
        stall_timeout: float | None = 120.0,
        on_status: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.url = url
        self._api_key = api_key
        self._secret_key = secret_key
        self._on_frame = on_frame
        self.backoff = backoff or BackoffPolicy()
        self._step_timeout = step_timeout
        self._connect_options: dict[str, Any] = {
            "open_timeout": step_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "close_timeout": 2.0,
            "max_size": max_frame_size,
            "compression": compression,
            "additional_headers": {"Content-Type": "application/json"},
            "user_agent_header": f"market-data-service websockets/{websockets_version}",
            "logger": _WIRE_LOGGER,
        }
        self.desired: set[str] = set()
        self.confirmed: frozenset[str] = frozenset()
        self.state = ConnectionState.IDLE
        self.reconnect_attempts = 0
        self.last_error: str | None = None
        self.connections_opened = 0
        self.frames_received = 0
        self.malformed_messages = 0
        self.other_messages = 0
        self.error_frames = 0
        # reconnects by short cause ("closed", "stall", "alpaca_406", ...): a fixed set
        # of names, so a metric labelled with them stays small.
        self.reconnect_causes: dict[str, int] = {}
        self.connected_since: float | None = None  # wall clock
        self.last_data_at: float | None = None  # wall clock
        self._ws: ClientConnection | None = None
        self._stopping = False
        self._wake = asyncio.Event()
        self._sub_lock = asyncio.Lock()
        self._control_waiter: asyncio.Future[ControlMessage] | None = None
        self._session_task: asyncio.Future[None] | None = None
        # Data clock: no market data for this long while subscribed means a stalled
        # feed. It doubles each time a fresh connection is silent too (markets closed),
        # up to _MAX_STALL_TIMEOUT, and returns to the base once data flows again.
        self.stall_timeout = stall_timeout
        self._stall_limit = stall_timeout
        self.stalls_detected = 0
        self._on_status = on_status
        self.disconnected_at: float | None = None  # wall clock of the last lost session
        self._close_reason: str | None = None  # why we closed the socket ourselves

    # -- public -------------------------------------------------------------------

    def is_connected(self) -> bool:
        return self.state is ConnectionState.CONNECTED

    def reset(self) -> None:
        """Forget an earlier :meth:`stop`, so :meth:`run` can be used again."""
        self._stopping = False

    async def run(self) -> None:
        """Hold the session until :meth:`stop`; raise when giving up for good.

        A :meth:`stop` that came before (or while :meth:`reset` had not been called
        since) makes this return at once.
        """
        while not self._stopping:
            started = time.monotonic()
            retry_after: float | None = None
            failure: Exception | None = None
            session = asyncio.ensure_future(self._session())
            self._session_task = session
            try:
                await session
                self.last_error = "server closed the connection"
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if not self._stopping or (task is not None and task.cancelling()):
                    raise
                break  # stop() cancelled a session that had no socket to close yet
            except AuthenticationError as exc:
                self._fail(f"{exc} (not retrying: fix the credentials or plan)")
                raise
            except HandshakeError as exc:
                if 400 <= exc.status < 500 and exc.status not in (408, 429):
                    self._fail(f"{exc} (not retrying: check the URL and credentials)")
                    raise
                retry_after = exc.retry_after
                self.last_error = str(exc)
                failure = exc
            except (StreamConnectionError, AlpacaError) as exc:
                self.last_error = str(exc)
                failure = exc
            finally:
                self._session_task = None
            if self._stopping:
                break
            if time.monotonic() - started >= _STABLE_AFTER:
                self.reconnect_attempts = 0
            self.reconnect_attempts += 1
            if self.reconnect_attempts > self.backoff.max_attempts:
                self._fail(
                    f"gave up after {self.backoff.max_attempts} reconnect attempts; "
                    f"last error: {self.last_error}"
                )
                raise StreamConnectionError(self.last_error or "gave up")
            delay = self.backoff.delay(self.reconnect_attempts)
            if retry_after is not None:
                delay = max(delay, retry_after)
            self.state = ConnectionState.RECONNECTING
            # _close_reason outlives a session that fails before it opens: match the text.
            stalled = failure is not None and str(failure) == self._close_reason
            cause = _reconnect_cause(failure, stalled=stalled)
            self.reconnect_causes[cause] = self.reconnect_causes.get(cause, 0) + 1
            logger.warning(
                "market data stream lost (%s); reconnect attempt %d/%d in %.2fs",
                self.last_error,
                self.reconnect_attempts,
                self.backoff.max_attempts,
                delay,
                extra={"cause": cause, "attempt": self.reconnect_attempts, "delay": delay},
            )
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
        self.state = ConnectionState.STOPPED

    async def stop(self) -> None:
        """Close the socket with a close frame and make :meth:`run` return."""
        self._stopping = True
        self._wake.set()
        ws = self._ws
        if ws is not None:
            await ws.close()
        elif self._session_task is not None:
            # Still connecting: nothing to send a close frame on, so abandon the attempt.
            self._session_task.cancel()
        if self.state is not ConnectionState.FAILED:
            self.state = ConnectionState.STOPPED

    async def subscribe(self, symbols: Iterable[str]) -> list[str]:
        """Add symbols; if connected, wait for the server's ack. Returns those added."""
        async with self._sub_lock:
            added = [s for s in dict.fromkeys(symbols) if s not in self.desired]
            if not added:
                return []
            self.desired.update(added)
            if self.is_connected():
                try:
                    await self._request("subscribe", added)
                except SubscriptionError as exc:
                    self.desired.difference_update(added)
                    logger.warning("subscribe of %s refused: %s", added, exc)
                    raise SubscriptionError(exc.code, exc.msg, added) from None
                except AlpacaError:
                    # Any other refusal (406, 407, 500): the server did not take them.
                    self.desired.difference_update(added)
                    raise
            return added

    async def unsubscribe(self, symbols: Iterable[str]) -> list[str]:
        """Remove symbols (quotes still in flight for them are dropped at once)."""
        async with self._sub_lock:
            removed = [s for s in dict.fromkeys(symbols) if s in self.desired]
            if not removed:
                return []
            self.desired.difference_update(removed)
            if self.is_connected():
                try:
                    await self._request("unsubscribe", removed)
                except (SubscriptionError, StreamConnectionError) as exc:
                    # The desired set already lacks them; a reconnect will not resend them.
                    logger.warning("unsubscribe of %s not confirmed: %s", removed, exc)
            return removed

    # -- session ------------------------------------------------------------------

    def _fail(self, reason: str) -> None:
        self.state = ConnectionState.FAILED
        self.last_error = reason
        logger.error("market data stream failed: %s", reason)

    async def _open(self) -> ClientConnection:
        try:
            return await connect(self.url, **self._connect_options)
        except InvalidStatus as exc:
            raise HandshakeError(exc.response.status_code, _retry_after(exc)) from exc
        except InvalidURI as exc:
            raise HandshakeError(400) from exc
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            raise StreamConnectionError(f"cannot connect to {self.url}: {exc!r}") from exc

    async def _session(self) -> None:
        self.state = ConnectionState.CONNECTING
        ws = await self._open()
        self._ws = ws
        self._close_reason = None
        self.connections_opened += 1
        try:
            await self._expect_success(ws, "connected")
            await ws.send(encode_auth(self._api_key, self._secret_key).decode())
            await self._expect_success(ws, "authenticated")
            async with self._sub_lock:
                self.confirmed = frozenset()
                if self.desired:
                    wanted = sorted(self.desired)
                    control = await self._send_and_wait(ws, "subscribe", wanted, reading=True)
                    try:
                        self._apply_control_reply(control, wanted)
                    except SubscriptionError as exc:
                        # Stay connected: what the server did accept keeps flowing.
                        logger.error("resubscribe refused after connecting: %s", exc)
                self.state = ConnectionState.CONNECTED
                self.connected_since = time.time()
            logger.info(
                "market data stream connected to %s (%d symbols)", self.url, len(self.desired)
            )
            self._notify_connected()
            watchdog = asyncio.create_task(self._watch_data(ws), name="market-data-clock")
            try:
                await self._read_loop(ws)
            finally:
                watchdog.cancel()
        except ConnectionClosed as exc:
            raise StreamConnectionError(self._close_reason or f"connection closed: {exc}") from exc
        except TimeoutError as exc:
            raise ProtocolError("server did not answer in time") from exc
        finally:
            self._ws = None
            if self.connected_since is not None and not self._stopping:
                self.disconnected_at = time.time()
                self._status("stream.disconnected", {"url": self.url})
            self.connected_since = None
            waiter, self._control_waiter = self._control_waiter, None
            if waiter is not None and not waiter.done():
                waiter.set_exception(StreamConnectionError("connection lost"))
            with contextlib.suppress(Exception):
                await ws.close()

    async def _expect_success(self, ws: ClientConnection, what: str) -> None:
        control = await self._next_control(ws)
        if isinstance(control, SuccessMessage) and control.msg == what:
            return
        if isinstance(control, ErrorMessage):
            self.error_frames += 1
            raise _alpaca_error(control)
        raise ProtocolError(f"expected {what!r}, got {control!r}")

    async def _next_control(self, ws: ClientConnection) -> ControlMessage:
        """Read until a control message, passing any market data on; bounded in time."""
        async with asyncio.timeout(self._step_timeout):
            while True:
                frame = await self._receive(ws)
                if frame.controls:
                    return frame.controls[0]

    async def _receive(self, ws: ClientConnection) -> DecodedFrame:
        message = await ws.recv(decode=False)
        self.frames_received += 1
        frame = decode_frame(message)
        if frame.malformed:
            self.malformed_messages += frame.malformed
            logger.warning("dropped %d malformed message(s): %s", frame.malformed, frame.errors)
        self.other_messages += frame.other
        if frame.quotes:
            self.last_data_at = time.time()
            self.reconnect_attempts = 0
            self._stall_limit = self.stall_timeout
            await self._on_frame(frame)
        return frame

    async def _watch_data(self, ws: ClientConnection) -> None:
        """Close a socket that stays silent while subscribed (pings alone prove nothing)."""
        limit = self._stall_limit
        if not limit:
            return
        since = time.monotonic()
        seen = self.last_data_at
        while True:
            await asyncio.sleep(min(limit / 4, 5.0))
            if self.last_data_at != seen or not self.desired:
                since, seen = time.monotonic(), self.last_data_at
                continue
            silent = time.monotonic() - since
            if silent >= limit:
                self.stalls_detected += 1
                self._stall_limit = min(limit * 2, max(_MAX_STALL_TIMEOUT, limit))
                self._close_reason = f"no market data for {silent:.0f}s while subscribed"
                logger.warning(
                    "%s; reconnecting (next stall check after %.0fs of silence)",
                    self._close_reason,
                    self._stall_limit,
                )
                await ws.close(code=1000, reason="no data")
                return

    def _notify_connected(self) -> None:
        details: dict[str, Any] = {"url": self.url, "symbols": sorted(self.desired)}
        if self.disconnected_at is not None:
            details["disconnected_at"] = self.disconnected_at
            details["gap_seconds"] = round(time.time() - self.disconnected_at, 3)
            self._status("stream.reconnected", details)
        else:
            self._status("stream.connected", details)

    def _status(self, event: str, details: dict[str, Any]) -> None:
        if self._on_status is not None:
            try:
                self._on_status(event, details)
            except Exception:  # a notice must never take the session down
                logger.exception("status notice %s failed", event)

    async def _read_loop(self, ws: ClientConnection) -> None:
        while True:
            frame = await self._receive(ws)
            for control in frame.controls:
                self._dispatch_control(control)

    def _dispatch_control(self, control: ControlMessage) -> None:
        waiter = self._control_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(control)
            return
        if isinstance(control, SubscriptionAck):
            self.confirmed = frozenset(control.quotes)
        elif isinstance(control, ErrorMessage):
            self.error_frames += 1
            error = _alpaca_error(control)
            self.last_error = str(error)
            logger.warning("server error frame: %s", error)
            if control.code in _RECONNECT_CODES:
                # 407: the server is about to drop us anyway; 500: its side is broken.
                # Reconnecting (with backoff) beats waiting on a socket in that state.
                raise error

    async def _request(self, action: str, symbols: list[str]) -> None:
        ws = self._ws
        if ws is None:
            return
        try:
            control = await self._send_and_wait(ws, action, symbols, reading=False)
        except ConnectionClosed as exc:
            # The session will reconnect and send the whole desired set again.
            logger.info("%s of %s deferred: connection closed (%s)", action, symbols, exc)
            return
        except StreamConnectionError as exc:
            logger.info("%s of %s deferred: %s", action, symbols, exc)
            return
        self._apply_control_reply(control, symbols)

    async def _send_and_wait(
        self, ws: ClientConnection, action: str, symbols: list[str], *, reading: bool
    ) -> ControlMessage:
        message = encode_subscription(action, symbols).decode()
        if reading:
            await ws.send(message)
            return await self._next_control(ws)
        # The waiter exists before the request leaves, so the read loop cannot see
        # the reply first and take it for an unsolicited one.
        waiter: asyncio.Future[ControlMessage] = asyncio.get_running_loop().create_future()
        self._control_waiter = waiter
        try:
            await ws.send(message)
            async with asyncio.timeout(self._step_timeout):
                return await waiter
        except TimeoutError as exc:
            raise StreamConnectionError(f"no answer to {action} in time") from exc
        finally:
            if self._control_waiter is waiter:
                self._control_waiter = None

    def _apply_control_reply(self, control: ControlMessage, symbols: list[str]) -> None:
        if isinstance(control, SubscriptionAck):
            self.confirmed = frozenset(control.quotes)
            return
        if isinstance(control, ErrorMessage):
            self.error_frames += 1
            error = _alpaca_error(control, symbols)
            self.last_error = str(error)
            raise error
        raise ProtocolError(f"unexpected reply to a subscription change: {control!r}")
