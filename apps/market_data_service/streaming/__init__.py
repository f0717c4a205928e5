"""The live stream: one Redis reader per process fanned out to WebSocket and SSE clients.

``hub`` (the reader and the fan-out), ``client`` (one client's buffer and the slow-client
policy, sans-I/O), ``session`` (a client's writer task), ``messages`` (the JSON
contract), ``tickets`` (one-time tickets for browsers). Routes: ``api/routes/stream.py``;
the contract and the policy: docs/streaming.md.
"""

from apps.market_data_service.streaming.client import ClientBuffer, ClientPolicy, ClientState
from apps.market_data_service.streaming.hub import HubState, HubStats, StreamHub
from apps.market_data_service.streaming.messages import (
    ALL,
    MAX_REQUEST_BYTES,
    MAX_SYMBOLS_PER_CLIENT,
    StreamRequest,
    encode_error,
    parse_request,
    parse_symbols,
)
from apps.market_data_service.streaming.session import ClientSession, abort_connection
from apps.market_data_service.streaming.tickets import TICKET_TTL, TicketBook

__all__ = [
    "ALL",
    "MAX_REQUEST_BYTES",
    "MAX_SYMBOLS_PER_CLIENT",
    "TICKET_TTL",
    "ClientBuffer",
    "ClientPolicy",
    "ClientSession",
    "ClientState",
    "HubState",
    "HubStats",
    "StreamHub",
    "StreamRequest",
    "TicketBook",
    "abort_connection",
    "encode_error",
    "parse_request",
    "parse_symbols",
]
