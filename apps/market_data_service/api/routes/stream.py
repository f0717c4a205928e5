"""The live stream: WebSocket ``/api/v1/stream``, SSE ``/api/v1/stream/sse``, and tickets.

Thin shells over :class:`~apps.market_data_service.streaming.hub.StreamHub`: they check
the key (or a ticket), read the client's requests, and close a client the slow-client
policy condemned. The SSE answer's own loop is in ``routes/stream_sse.py``. The contract
is in docs/streaming.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Annotated, Final, Literal

from fastapi import APIRouter, Query, WebSocket, status
from fastapi.responses import Response
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from apps.market_data_service.api.dependencies import ServiceDep
from apps.market_data_service.api.errors import ErrorCode, ProblemError, problems
from apps.market_data_service.api.routes.stream_sse import EventStream, writer_tasks
from apps.market_data_service.api.schemas.stream import TicketResponse
from apps.market_data_service.api.security import api_key_configured, check_api_key
from apps.market_data_service.service import MarketDataService
from apps.market_data_service.streaming import (
    ALL,
    MAX_REQUEST_BYTES,
    MAX_SYMBOLS_PER_CLIENT,
    TICKET_TTL,
    ClientSession,
    StreamHub,
    abort_connection,
    encode_error,
    parse_request,
    parse_symbols,
)
from libs.market_data import InvalidSymbolError
from libs.tasks import cancel_and_wait

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1")

_POLICY_VIOLATION: Final = 1008

_MESSAGES: Final = """
Messages (one JSON object per frame, or a JSON array of several, in order):
`{"type":"snapshot","symbol":"AAPL","data":{...}|null}` one per symbol on subscribe and
after a resync; `{"type":"price","data":{...}}` an update; `{"type":"resync","symbols":
[...],"reason":"..."}` a gap (snapshots follow); `{"type":"coalesced","replaced":N,
"symbols":[...]}` the client was behind and N older updates were replaced by newer ones;
`{"type":"subscriptions","symbols":[...]}`; `{"type":"error","message":"..."}`. `data`:
`symbol`, `bid`, `ask`, `mid`, `bid_size`, `ask_size` (exact decimal strings: `"100"`,
`"0.00012345"` for a crypto pair), `timestamp`, `seq`, `epoch`. A client behind for more
than 5 s is closed (WebSocket 1008, SSE a last `error`). See docs/streaming.md.
"""

_TICKET_DOC: Final = """Browsers cannot set `X-API-Key` on a WebSocket or an `EventSource`.
Call this with the key (as on every route), then open `/api/v1/stream?ticket=...` (WebSocket)
or `/api/v1/stream/sse?symbols=...&ticket=...` within `expires_in` seconds. A
ticket works once. Without `MARKET_DATA_API_KEY` the stream is open and a ticket is
not needed (nor checked).

The WebSocket `GET /api/v1/stream`: send `{"action":"subscribe","symbols":["AAPL"]}`
or `{"action":"unsubscribe","symbols":[...]}` (`"symbols":"*"`: every symbol); a bad
request (unknown action, bad ticker, not JSON, over 64 KiB) gets an `error` message
and the socket stays open. Non-browser clients may send `X-API-Key` instead of a
ticket.
"""

_SSE_DOC: Final = """The WebSocket's messages for `curl -N` and `EventSource`, one `data:` line
per frame: the snapshots of `symbols` first, then updates. Auth: `X-API-Key` (or Bearer),
or `ticket` from `POST /api/v1/stream/ticket`.
"""


_MESSAGE_SCHEMA: Final = {
    "type": "object",
    "required": ["type"],
    "properties": {
        "type": {
            "type": "string",
            "enum": ["snapshot", "price", "resync", "coalesced", "subscriptions", "error"],
        }
    },
}
# One SSE event (OpenAPI 3.1: the schema of a text/event-stream describes each event).
_SSE_EVENT: Final = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "oneOf": [_MESSAGE_SCHEMA, {"type": "array", "items": _MESSAGE_SCHEMA}]
            },
        },
        "event": {"type": "string"},
    },
}


def _service(connection: HTTPConnection) -> MarketDataService:
    service: MarketDataService = connection.app.state.service
    return service


def _authorize(connection: HTTPConnection, ticket: str | None) -> None:
    """Raise the 401 unless the key is not configured, the ticket is good, or the headers
    carry the key. A ticket is used up by this call, good or not."""
    if ticket is not None and api_key_configured(connection):
        if not _service(connection).stream_tickets.redeem(ticket):
            raise ProblemError(
                status.HTTP_401_UNAUTHORIZED,
                "invalid, used or expired stream ticket: get a new one from "
                "POST /api/v1/stream/ticket",
                ErrorCode.UNAUTHORIZED,
            )
        return
    check_api_key(connection)


@router.post(
    "/stream/ticket",
    status_code=status.HTTP_201_CREATED,
    response_model=TicketResponse,
    summary="A one-time ticket to open the live stream from a browser",
    description=_TICKET_DOC + _MESSAGES,
)
async def stream_ticket(service: ServiceDep) -> TicketResponse:
    """A new ticket (see the description)."""
    return TicketResponse(ticket=service.stream_tickets.issue(), expires_in=TICKET_TTL)


@router.websocket("/stream")
async def stream_websocket(websocket: WebSocket, ticket: str | None = None) -> None:
    try:
        _authorize(websocket, ticket)
    except ProblemError:
        # Closing before the handshake: uvicorn answers HTTP 403. (A 401 with a body, by
        # a denial response, makes uvicorn log an error per refused client.)
        await websocket.close(code=_POLICY_VIOLATION)
        return
    hub = _service(websocket).stream_hub
    await hub.ensure_started()
    await websocket.accept()

    async def send(data: bytes) -> None:
        await websocket.send({"type": "websocket.send", "text": data.decode()})

    client = hub.connect(send, "ws")
    tasks = [
        asyncio.create_task(_read_requests(websocket, hub, client)),
        asyncio.create_task(client.condemned.wait()),
    ]
    try:
        await asyncio.wait([*tasks, *writer_tasks(client)], return_when=asyncio.FIRST_COMPLETED)
        if client.condemned.is_set():
            await client.stop()
            await _close_slow(websocket, client)
    finally:
        await cancel_and_wait(*tasks, quiet=True)
        await hub.disconnect(client)


async def _read_requests(websocket: WebSocket, hub: StreamHub, client: ClientSession) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            request = parse_request(raw if raw is not None else message.get("bytes") or b"")
            if isinstance(request, str):
                client.push_control(encode_error(request))
            elif request.action == "unsubscribe":
                hub.unsubscribe(client, request.symbols)
            elif (
                request.symbols != ALL
                and len(client.symbols.union(request.symbols)) > MAX_SYMBOLS_PER_CLIENT
            ):
                client.push_control(
                    encode_error(f"at most {MAX_SYMBOLS_PER_CLIENT} symbols per client")
                )
            else:
                hub.subscribe(client, request.symbols)


async def _close_slow(websocket: WebSocket, client: ClientSession) -> None:
    """1008 and the reason; a client that reads nothing is cut off (docs/streaming.md)."""
    try:
        async with asyncio.timeout(client.buffer.policy.close_grace):
            await websocket.close(code=_POLICY_VIOLATION, reason=client.buffer.reason)
        return
    except (TimeoutError, RuntimeError, OSError, WebSocketDisconnect):
        pass
    abort_connection(websocket.receive)


# -- SSE -------------------------------------------------------------------------------------


@router.get(
    "/stream/sse",
    summary="Live prices as Server-Sent Events",
    description=_SSE_DOC + _MESSAGES,
    response_class=Response,
    responses={
        200: {
            "description": "`text/event-stream`: one `data:` line per frame (the messages below)",
            "content": {"text/event-stream": {"schema": _SSE_EVENT}},
        },
        **problems(
            {422: "A bad ticker, none, or more than 1000 (`invalid_symbol`, `invalid_request`)"}
        ),
    },
)
async def stream_sse(
    connection: HTTPConnection,
    # Optional here so that a request without the key gets its 401 first; checked below.
    symbols: Annotated[
        str | None, Query(description='Comma-separated tickers, or "*" for every symbol')
    ] = None,
    ticket: Annotated[
        str | None, Query(description="A ticket from POST /api/v1/stream/ticket")
    ] = None,
) -> Response:
    """The stream as text/event-stream (see the description)."""
    _authorize(connection, ticket)
    wanted: tuple[str, ...] | Literal["*"]
    try:
        if symbols is None or len(symbols) > MAX_REQUEST_BYTES:
            raise ValueError('symbols: a comma-separated list of tickers, or "*"')
        wanted = ALL if symbols.strip() == ALL else parse_symbols(symbols.split(","))
    except InvalidSymbolError as exc:
        raise ProblemError(422, f"invalid symbol {exc.symbol!r}: {exc.why}",
                           ErrorCode.INVALID_SYMBOL) from exc  # fmt: skip
    except ValueError as exc:
        raise ProblemError(422, str(exc), ErrorCode.INVALID_REQUEST) from exc
    return EventStream(_service(connection).stream_hub, wanted)
