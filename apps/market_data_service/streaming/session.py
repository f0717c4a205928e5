"""One connected client: its symbols, its buffer, and the task that writes its frames.

The transport (WebSocket or SSE) is a ``send(frame)`` coroutine; the routes own the
socket, the hub owns the sessions. The policy lives in the sans-I/O
:class:`~apps.market_data_service.streaming.client.ClientBuffer`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from apps.market_data_service.streaming.client import ClientBuffer, ClientPolicy
from apps.market_data_service.streaming.messages import frame
from libs.tasks import cancel_and_wait

__all__ = ["ClientSession", "Sender", "Transport", "abort_connection"]

logger = logging.getLogger(__name__)

Sender = Callable[[bytes], Awaitable[None]]
Transport = Literal["ws", "sse"]


class ClientSession:
    """A client of the hub; the hub calls :meth:`push_price` / :meth:`push_control`."""

    def __init__(
        self, send: Sender, policy: ClientPolicy, name: str, transport: Transport = "ws"
    ) -> None:
        self.name = name
        self.transport: Transport = transport
        self.buffer = ClientBuffer(policy)
        self.symbols: set[str] = set()
        self.everything = False  # subscribed to "*"
        self.condemned = asyncio.Event()  # the policy closes it: buffer.reason says why
        self._send = send
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._writer: asyncio.Task[None] | None = None

    def wants(self, symbol: str) -> bool:
        return self.everything or symbol in self.symbols

    def push_price(self, symbol: str, payload: bytes) -> None:
        self.buffer.offer_price(symbol, payload, self._loop.time())
        self._wake.set()

    def push_control(self, payload: bytes) -> None:
        self.buffer.offer_control(payload, self._loop.time())
        self._wake.set()

    def check(self, now: float) -> None:
        """The watchdog's question: close it if the policy says so."""
        if not self.condemned.is_set() and self.buffer.check(now) is not None:
            logger.info("stream client %s closed: %s", self.name, self.buffer.reason)
            self.condemned.set()

    def start(self) -> asyncio.Task[None]:
        self._writer = asyncio.create_task(self._write(), name=f"stream-writer-{self.name}")
        return self._writer

    @property
    def writer(self) -> asyncio.Task[None] | None:
        """The writing task; it ends when a send fails (the client is gone)."""
        return self._writer

    async def stop(self) -> None:
        writer, self._writer = self._writer, None
        await cancel_and_wait(writer, quiet=True)

    async def _write(self) -> None:
        buffer, loop = self.buffer, self._loop
        delay = buffer.policy.batch_delay
        try:
            while True:
                await self._wake.wait()
                if delay:
                    await asyncio.sleep(delay)
                self._wake.clear()
                while messages := buffer.take():
                    buffer.send_started(loop.time())
                    await self._send(frame(messages))
                    buffer.send_finished(loop.time(), len(messages))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the socket is gone: the route sees it and cleans up
            logger.debug("stream client %s: send failed: %r", self.name, exc)


def abort_connection(receive: Any) -> bool:
    """Drop the TCP connection under an ASGI ``receive`` at once; True if it could.

    A client that reads nothing never lets a close frame or the end of a response
    through (the server's send waits for the socket to drain), and ASGI has no abort.
    uvicorn's ``receive`` is a method of its protocol object, which holds the transport:
    aborting it frees the buffers now (docs/streaming.md, "Slow clients").
    """
    transport = getattr(getattr(receive, "__self__", None), "transport", None)
    abort = getattr(transport, "abort", None)
    if abort is None:
        return False
    abort()
    return True
