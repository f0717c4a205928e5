"""The simulator's socket: one port for the WebSocket feeds and the REST calls.

websockets serves both: each HTTP request goes to the REST endpoints first
(:mod:`apps.simulator.rest`), then a feed path is upgraded to a WebSocket run by one
:class:`~apps.simulator.session.Session`; anything else is a 404. The session's slot
in the connection limit is freed when it ends (later, for a socket that died).
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Final

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from apps.simulator.encoding import JsonEncoder, MsgpackEncoder, WireEncoder
from apps.simulator.rest import SimulatorRest
from apps.simulator.session import Session, SessionContext

__all__ = ["Listener"]

# The facade's logger, as before the split: a level set on it still covers the socket.
logger = logging.getLogger("apps.simulator.server")

# Stock feeds, and the crypto feed (v1beta3/crypto/{us,us-1,eu-1}).
_PATH: Final = re.compile(r"/(?:v2|v1beta1|v1beta3/crypto)/[A-Za-z0-9_.\-]+/?")
_CLOSE_TIMEOUT_S: Final = 2.0


class Listener:
    """Binds the port, routes each request, runs a session per WebSocket."""

    def __init__(self, context: SessionContext, rest: SimulatorRest) -> None:
        self._context = context
        self._rest = rest
        self._encoders: dict[bool, WireEncoder] = {False: JsonEncoder(), True: MsgpackEncoder()}
        self._server: Server | None = None

    async def start(self) -> int:
        """Bind and start accepting connections; the bound port."""
        if self._server is not None:
            raise RuntimeError("simulator already started")
        cfg = self._context.config
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
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def stop(self) -> bool:
        """Close every connection (1001 going away) and the listener; False if not started."""
        server, self._server = self._server, None
        if server is None:
            return False
        server.close()
        await server.wait_closed()
        return True

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        rest = self._rest.handle(request)
        if rest is not None:
            return rest
        path = request.path.partition("?")[0]
        if _PATH.fullmatch(path) is None:
            return connection.respond(HTTPStatus.NOT_FOUND, "Not Found\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        headers = ws.request.headers if ws.request is not None else Headers()
        binary = "msgpack" in headers.get("Content-Type", "").lower()
        session = Session(self._context, ws, self._encoders[binary])
        registry = self._context.registry
        registry.add(session)
        # The connection as websockets' own records carry it: the service's log formatter
        # shows it as the peer address and connection id.
        where = {"websocket": ws}
        logger.debug("simulator session opened (%s)", "msgpack" if binary else "json", extra=where)
        try:
            await session.run()
        finally:
            # A socket that died without the client's closing handshake (a crash, a
            # network drop) keeps its slot until the server notices: Alpaca takes up to
            # 90 s (docs/concepts/websocket-streaming.md).
            dead = ws.protocol.close_rcvd is None
            delay = self._context.config.connection_release_delay if dead else 0.0
            registry.discard(session, delay)
            session.closed.set()
            logger.debug("simulator session closed", extra=where)
