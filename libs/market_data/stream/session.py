"""The protocol state of an Alpaca stream connection, without any I/O (sans-I/O).

Like h11 or websockets' own protocol layer, :class:`StreamSession` does no reading,
writing, sleeping or logging: the connection feeds it each decoded control message and
it answers with a typed event (send this text, authenticated, established, a request
answered, a server error, fail with this error). It owns the handshake (greeting, auth,
resubscription), the symbols wanted and the ones the server confirmed, the one pending
subscription request, and what each Alpaca error code means here
(docs/concepts/websocket-streaming.md):

- 402, 409, 410, 411 (credentials, plan, feed, scope): :class:`AuthenticationError`; the
  run loop gives up, as retrying cannot fix them.
- 406 (connection limit): ends the handshake; the run loop waits with backoff and retries.
- 400, 405 in reply to a (re)subscribe: refuse that request only; the session stays up.
- 407 (slow client), 500 (server broken), unsolicited: end the session; reconnect.
- any other unsolicited error: reported, the session stays up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from libs.market_data.exceptions import (
    AlpacaError,
    AuthenticationError,
    ConnectionLimitError,
    ProtocolError,
    SlowClientError,
    SubscriptionError,
)
from libs.market_data.stream.protocol import (
    ControlMessage,
    ErrorMessage,
    SubscriptionAck,
    SuccessMessage,
    encode_auth,
    encode_subscription,
)

__all__ = [
    "FATAL_ERROR_CODES",
    "RECONNECT_CODES",
    "Answered",
    "Authenticated",
    "Event",
    "Fail",
    "Phase",
    "Ready",
    "Reported",
    "Send",
    "StreamSession",
    "alpaca_error",
]

# Refused credentials, plan or scope: reconnecting cannot fix these.
FATAL_ERROR_CODES: Final = frozenset({402, 409, 410, 411})
# Unsolicited error frames after which the session is given up and redone: after 407
# the server is about to drop us anyway, after 500 its side is broken. Reconnecting
# (with backoff) beats waiting on a socket in that state.
RECONNECT_CODES: Final = frozenset({407, 500})


def alpaca_error(message: ErrorMessage, symbols: Iterable[str] = ()) -> AlpacaError:
    """The exception an error frame stands for; ``symbols``: the request it refused."""
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


class Phase(StrEnum):
    CLOSED = "closed"  # no socket
    GREETING = "greeting"  # socket open, waiting for "connected"
    AUTHENTICATING = "authenticating"  # auth sent, waiting for "authenticated"
    AUTHENTICATED = "authenticated"  # until the connection calls resubscribe()
    RESUBSCRIBING = "resubscribing"  # the wanted set sent again, waiting for its ack
    READY = "ready"  # established: requests may be made


# -- events: what the connection must do or know ------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send this text frame. The auth message holds the secret: never log ``text``."""

    text: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    """Auth accepted. Hold back new requests, then call :meth:`StreamSession.resubscribe`."""


@dataclass(frozen=True, slots=True)
class Ready:
    """The session is established; ``refused``: why the server refused the resubscription."""

    refused: SubscriptionError | None = None


@dataclass(frozen=True, slots=True)
class Answered:
    """The pending request got its reply; ``error`` is ``None`` when the server acked it."""

    action: str
    symbols: tuple[str, ...]
    error: AlpacaError | ProtocolError | None


@dataclass(frozen=True, slots=True)
class Reported:
    """An unsolicited error frame that leaves the session up (worth a log line)."""

    error: AlpacaError


@dataclass(frozen=True, slots=True)
class Fail:
    """End this socket's session with ``error`` (``failures.classify`` says what next)."""

    error: AlpacaError | ProtocolError


Event = Send | Authenticated | Ready | Answered | Reported | Fail


@dataclass(frozen=True, slots=True)
class _Request:
    action: str
    symbols: tuple[str, ...]


class StreamSession:
    """Protocol state across the sockets of one connection: per socket, and what outlives it.

    ``desired`` (what we want: topics, ``AAPL`` for quotes, ``trades:AAPL``, ``bars:AAPL``,
    see :mod:`libs.market_data.topics`) outlives every socket and is re-sent after each auth;
    ``confirmed`` (the server's last ack) and the phase belong to the current socket.
    """

    def __init__(self, api_key: str, secret_key: str) -> None:
        self._api_key = api_key
        self._secret_key = secret_key
        # Mutated in place, never replaced: the façade holds this very set and reads it
        # per frame, so a replacement would leave it filtering on a stale copy.
        self.desired: set[str] = set()
        self.confirmed: frozenset[str] = frozenset()
        self.phase = Phase.CLOSED
        self.error_frames = 0
        self.pending: _Request | None = None
        self._resubscribing: tuple[str, ...] = ()

    # -- socket lifecycle ------------------------------------------------------------------

    def connection_opened(self) -> None:
        """A new socket is open: expect the greeting."""
        self.phase = Phase.GREETING
        self.pending = None

    def connection_lost(self) -> None:
        """The socket is gone; a pending request will get no answer on it."""
        self.phase = Phase.CLOSED
        self.pending = None

    # -- what we want ----------------------------------------------------------------------

    def add(self, symbols: Iterable[str]) -> list[str]:
        """Want these symbols too; returns the ones not wanted before, in the given order."""
        added = [s for s in dict.fromkeys(symbols) if s not in self.desired]
        self.desired.update(added)
        return added

    def remove(self, symbols: Iterable[str]) -> list[str]:
        """Stop wanting these; returns the ones that were wanted. Never rolled back: a
        refused unsubscribe is not sent again after a reconnect anyway."""
        removed = [s for s in dict.fromkeys(symbols) if s in self.desired]
        self.desired.difference_update(removed)
        return removed

    def request(self, action: str, symbols: list[str]) -> Send:
        """Start a (un)subscribe request; its reply comes back as :class:`Answered`.

        One at a time, and only once :data:`Phase.READY`; the connection serialises them.
        """
        if self.phase is not Phase.READY or self.pending is not None:
            raise RuntimeError(f"cannot request in phase {self.phase} with a request pending")
        self.pending = _Request(action, tuple(symbols))
        return Send(encode_subscription(action, symbols).decode())

    def abandon_request(self) -> None:
        """The requester stopped waiting (timeout): a late reply counts as unsolicited."""
        self.pending = None

    def resubscribe(self) -> Send | Ready:
        """After :class:`Authenticated`: send the whole wanted set, or be ready at once."""
        self.confirmed = frozenset()
        if not self.desired:
            self.phase = Phase.READY
            return Ready()
        self.phase = Phase.RESUBSCRIBING
        self._resubscribing = tuple(sorted(self.desired))
        return Send(encode_subscription("subscribe", self._resubscribing).decode())

    # -- what arrived ----------------------------------------------------------------------

    def receive(self, control: ControlMessage) -> Event | None:
        """Take one control message; returns what follows from it, if anything."""
        if isinstance(control, ErrorMessage):
            self.error_frames += 1
        phase = self.phase
        if phase is Phase.READY:
            if self.pending is not None:
                return self._answer(self.pending, control)
            return self._unsolicited(control)
        if phase is Phase.GREETING:
            return self._expect(control, "connected", Phase.AUTHENTICATING)
        if phase is Phase.AUTHENTICATING:
            return self._expect(control, "authenticated", Phase.AUTHENTICATED)
        if phase is Phase.RESUBSCRIBING:
            return self._resubscribed(control)
        return None  # no socket, or between auth and resubscribe: nothing is expected

    def _expect(self, control: ControlMessage, what: str, then: Phase) -> Event:
        if isinstance(control, SuccessMessage) and control.msg == what:
            self.phase = then
            if then is Phase.AUTHENTICATING:
                return Send(encode_auth(self._api_key, self._secret_key).decode())
            return Authenticated()
        if isinstance(control, ErrorMessage):
            return Fail(alpaca_error(control))
        return Fail(ProtocolError(f"expected {what!r}, got {control!r}"))

    def _resubscribed(self, control: ControlMessage) -> Event:
        wanted, self._resubscribing = self._resubscribing, ()
        error = self._reply_error(control, wanted)
        if error is None:
            self.phase = Phase.READY
            return Ready()
        if isinstance(error, SubscriptionError):
            # Stay connected: what the server did accept keeps flowing.
            self.phase = Phase.READY
            return Ready(refused=error)
        return Fail(error)

    def _answer(self, request: _Request, control: ControlMessage) -> Answered:
        self.pending = None
        error = self._reply_error(control, request.symbols)
        if isinstance(error, AlpacaError) and request.action == "subscribe":
            # The server did not take them: we do not want what we cannot have.
            self.desired.difference_update(request.symbols)
        return Answered(request.action, request.symbols, error)

    def _reply_error(
        self, control: ControlMessage, symbols: Iterable[str]
    ) -> AlpacaError | ProtocolError | None:
        """Apply the reply to a subscription change; ``None`` when it is the ack."""
        if isinstance(control, SubscriptionAck):
            self.confirmed = control.topics()
            return None
        if isinstance(control, ErrorMessage):
            return alpaca_error(control, symbols)
        return ProtocolError(f"unexpected reply to a subscription change: {control!r}")

    def _unsolicited(self, control: ControlMessage) -> Event | None:
        if isinstance(control, SubscriptionAck):
            self.confirmed = control.topics()
        elif isinstance(control, ErrorMessage):
            error = alpaca_error(control)
            return Fail(error) if control.code in RECONNECT_CODES else Reported(error)
        return None
