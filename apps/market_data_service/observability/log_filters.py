"""Filters on uvicorn's loggers: probes left out of the access log, credentials masked.

:class:`ProbeFilter` drops the access lines of :data:`PROBE_PATHS` (health probes and
metric scrapes repeat every few seconds); :class:`QueryRedactFilter` masks a stream
ticket or key in a query string, and the auth headers websockets logs at DEBUG.
Installed by :func:`~apps.market_data_service.observability.logs.quiet_logs`.
"""

from __future__ import annotations

import logging
import re
from typing import Final

from apps.market_data_service.observability.log_format import MASK

__all__ = ["ACCESS_LOGGER", "ERROR_LOGGER", "PROBE_PATHS", "ProbeFilter", "QueryRedactFilter"]

# Requests that probes and scrapers repeat every few seconds.
PROBE_PATHS: Final = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})
ACCESS_LOGGER: Final = "uvicorn.access"
ERROR_LOGGER: Final = "uvicorn.error"
# Query parameters that carry a credential: a stream ticket (docs/streaming.md). The key
# itself is never taken from a URL, but a client may still put it there by mistake.
_SECRET_QUERY: Final = re.compile(r"(?i)\b(ticket|api_key|apikey|key|token)=[^&\s\"]*")
# Request headers websockets logs at DEBUG (through uvicorn.error) as ("name", "value").
_SECRET_HEADERS: Final = frozenset({"x-api-key", "authorization", "cookie"})


class ProbeFilter(logging.Filter):
    """Leaves out uvicorn's access-log lines of :data:`PROBE_PATHS` (any query, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn: '%s - "%s %s HTTP/%s" %d' % (client, method, path?query, version, status)
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            return args[2].partition("?")[0] not in PROBE_PATHS
        return True


class QueryRedactFilter(logging.Filter):
    """Masks credentials in what uvicorn logs: query strings (access lines, WebSocket
    lines) and, at DEBUG, the handshake's auth headers."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and isinstance(args[0], str)
            and args[0].lower() in _SECRET_HEADERS
        ):
            record.args = (args[0], MASK)
        elif isinstance(args, tuple) and any(isinstance(a, str) and "=" in a for a in args):
            record.args = tuple(
                _SECRET_QUERY.sub(rf"\1={MASK}", a) if isinstance(a, str) else a for a in args
            )
        return True
