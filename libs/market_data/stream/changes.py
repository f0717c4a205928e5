"""Subscription changes: one at a time, each sent on the live socket and waited for.

:class:`SubscriptionChanges` updates the wanted set in the session and, while connected,
sends the change and waits (bounded) for the server's reply, which the connection's
read loop hands over with :meth:`~SubscriptionChanges.answered`. A change that meets no
live socket is not lost: the next session sends the whole wanted set again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from libs.market_data.exceptions import ProtocolError, StreamConnectionError, SubscriptionError
from libs.market_data.stream.session import Answered, StreamSession

__all__ = ["SubscriptionChanges"]

logger = logging.getLogger(__name__)


class SubscriptionChanges:
    """Serialises subscribe/unsubscribe and pairs each request with its reply.

    ``live_socket`` returns the socket while the session is established, else ``None``.
    :attr:`lock` is also held by the connection while it resubscribes after auth, so no
    change can slip in between the resubscription and its ack.
    """

    def __init__(
        self,
        session: StreamSession,
        live_socket: Callable[[], ClientConnection | None],
        step_timeout: float,
    ) -> None:
        self.lock = asyncio.Lock()
        self._session = session
        self._live_socket = live_socket
        self._step_timeout = step_timeout
        self._reply: asyncio.Future[Answered] | None = None

    async def subscribe(self, symbols: Iterable[str]) -> list[str]:
        """Add symbols; if connected, wait for the server's ack. Returns those added."""
        async with self.lock:
            added = self._session.add(symbols)
            answered = await self._request("subscribe", added) if added else None
            if answered is not None and answered.error is not None:
                # The session already took back what the server refused.
                if isinstance(answered.error, SubscriptionError):
                    logger.warning("subscribe of %s refused: %s", added, answered.error)
                raise answered.error
            return added

    async def unsubscribe(self, symbols: Iterable[str]) -> list[str]:
        """Remove symbols; a refusal is logged, as the wanted set already lacks them."""
        async with self.lock:
            removed = self._session.remove(symbols)
            answered = await self._request("unsubscribe", removed) if removed else None
            error = None if answered is None else answered.error
            if isinstance(error, SubscriptionError | ProtocolError):
                # Not resent by a reconnect either: the next session does not want them.
                logger.warning("unsubscribe of %s not confirmed: %s", removed, error)
            elif error is not None:
                raise error
            return removed

    def answered(self, event: Answered) -> None:
        """The read loop got the reply to the pending request."""
        reply = self._reply
        if reply is not None and not reply.done():
            reply.set_result(event)

    def socket_lost(self) -> None:
        """The socket is gone: a request waiting on it is deferred to the next session."""
        reply, self._reply = self._reply, None
        if reply is not None and not reply.done():
            reply.set_exception(StreamConnectionError("connection lost"))

    async def _request(self, action: str, symbols: list[str]) -> Answered | None:
        """Send a change and wait for its reply; ``None``: not connected, or deferred."""
        ws = self._live_socket()
        if ws is None:
            return None
        # The reply slot exists before the request leaves, so the read loop cannot see
        # the reply first and take it for an unsolicited message.
        reply: asyncio.Future[Answered] = asyncio.get_running_loop().create_future()
        self._reply = reply
        send = self._session.request(action, symbols)
        try:
            await ws.send(send.text)
            async with asyncio.timeout(self._step_timeout):
                return await reply
        except ConnectionClosed as exc:
            logger.info("%s of %s deferred: connection closed (%s)", action, symbols, exc)
        except TimeoutError:
            logger.info("%s of %s deferred: no answer to %s in time", action, symbols, action)
        except StreamConnectionError as exc:
            logger.info("%s of %s deferred: %s", action, symbols, exc)
        finally:
            if self._reply is reply:
                self._reply = None
                # A reply that comes after all is then taken as unsolicited.
                self._session.abandon_request()
        return None
