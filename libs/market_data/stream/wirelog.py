"""The logger our WebSocket connections write their frame log to, with the auth frame blanked.

websockets logs every frame at DEBUG, the auth message with the key and secret too. The
connection hands websockets :data:`WIRE_LOGGER` instead of its default logger, and a filter
on it rewrites that one record before any handler sees it (docs/security.md).
"""

from __future__ import annotations

import logging
import re
from typing import Final

__all__ = ["WIRE_LOGGER", "AuthFrameRedactor"]


class AuthFrameRedactor(logging.Filter):
    """Blanks the frame websockets logs at DEBUG when it sends the auth message."""

    # The frame log shows the JSON text, possibly cut short: match the action alone,
    # which comes first in our auth message, rather than a key or secret we may not see.
    _AUTH = re.compile(r"action.{0,8}?auth", re.DOTALL)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno <= logging.DEBUG and self._AUTH.search(record.getMessage()):
            record.msg, record.args = "> (the auth message: redacted)", ()
        return True


# A filter on a logger (not a handler) runs before propagation, so no handler anywhere,
# ours or an application's, ever receives the unredacted record.
WIRE_LOGGER: Final = logging.getLogger("libs.market_data.wire")
WIRE_LOGGER.addFilter(AuthFrameRedactor())
