"""Getting a session established: the socket opened, then the protocol handshake run.

:func:`open_socket` holds everything that depends on how ``websockets`` opens a
connection, so the rest of the stream sees only
:class:`~libs.market_data.exceptions.HandshakeError` (an HTTP status instead of the
upgrade) and :class:`~libs.market_data.exceptions.StreamConnectionError` (no connection
at all). :func:`establish` then carries out what the session asks until it is ready:
greeting, auth, resubscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.version import version as websockets_version

from libs.market_data.backoff import parse_retry_after
from libs.market_data.exceptions import HandshakeError, StreamConnectionError
from libs.market_data.stream.protocol import ControlMessage
from libs.market_data.stream.session import Authenticated, Fail, Ready, Send, StreamSession
from libs.market_data.stream.wirelog import WIRE_LOGGER

__all__ = ["connect_options", "establish", "open_socket"]


def connect_options(
    *,
    step_timeout: float,
    ping_interval: float | None,
    ping_timeout: float | None,
    max_frame_size: int,
    compression: str | None,
) -> dict[str, Any]:
    """Keyword arguments for ``websockets.asyncio.client.connect``."""
    return {
        "open_timeout": step_timeout,
        "ping_interval": ping_interval,
        "ping_timeout": ping_timeout,
        # A close handshake is a courtesy: after 2 s the TCP connection is dropped anyway.
        "close_timeout": 2.0,
        "max_size": max_frame_size,
        "compression": compression,
        # We speak JSON: Alpaca would answer in msgpack if asked for it.
        "additional_headers": {"Content-Type": "application/json"},
        "user_agent_header": f"market-data-service websockets/{websockets_version}",
        # Its frame log goes through the logger that blanks the auth message.
        "logger": WIRE_LOGGER,
    }


async def open_socket(url: str, options: dict[str, Any]) -> ClientConnection:
    """Open the socket; raise :class:`HandshakeError` or :class:`StreamConnectionError`."""
    try:
        return await connect(url, **options)
    except InvalidStatus as exc:
        retry_after = parse_retry_after(exc.response.headers.get("Retry-After"), time.time())
        raise HandshakeError(exc.response.status_code, retry_after) from exc
    except InvalidURI as exc:
        raise HandshakeError(400) from exc
    except (OSError, TimeoutError, InvalidHandshake) as exc:
        raise StreamConnectionError(f"cannot connect to {url}: {exc!r}") from exc


async def establish(
    ws: ClientConnection,
    session: StreamSession,
    next_control: Callable[[ClientConnection], Awaitable[ControlMessage]],
    changes_lock: asyncio.Lock,
    on_ready: Callable[[Ready], None],
) -> None:
    """Run the handshake on a socket the session was told is open; raise its error if it
    fails, call ``on_ready`` once it is established.

    ``next_control`` reads up to the next control message (passing market data on) and
    bounds each step in time. ``changes_lock`` serialises subscription changes.
    """
    async with contextlib.AsyncExitStack() as held:
        while True:
            event = session.receive(await next_control(ws))
            if isinstance(event, Authenticated):
                # Until the wanted set is confirmed, a subscribe() must wait: its own
                # request would race the resubscription for the reply.
                await held.enter_async_context(changes_lock)
                event = session.resubscribe()
            if isinstance(event, Send):
                await ws.send(event.text)
            elif isinstance(event, Ready):
                # Still under the lock: a waiting subscribe() finds the connection
                # established and sends its own request after the resubscription.
                on_ready(event)
                return
            elif isinstance(event, Fail):
                raise event.error
