"""One-time, short-lived stream tickets, for browsers (docs/streaming.md, "Auth").

A browser cannot put ``X-API-Key`` on a WebSocket or an ``EventSource`` request, and a key
in a URL ends up in logs and histories. So a page asks ``POST /api/v1/stream/ticket``
with the key (``fetch`` can set headers) and opens the stream with ``?ticket=...``. A
ticket is random (``secrets.token_urlsafe``), works once, expires after
:data:`TICKET_TTL` seconds, and lives in this process's memory only. Only its SHA-256 is
kept, so not even a memory dump shows a ticket that can still be used.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

__all__ = ["TICKET_TTL", "TicketBook"]

TICKET_TTL: Final = 30  # seconds
_MAX_OUTSTANDING: Final = 10_000  # beyond it the oldest tickets are forgotten


def _digest(ticket: str) -> bytes:
    return hashlib.sha256(ticket.encode("utf-8", "surrogatepass")).digest()


class TicketBook:
    """Issues and redeems tickets (single use, bounded count, expiring)."""

    def __init__(
        self,
        ttl: float = TICKET_TTL,
        *,
        max_outstanding: int = _MAX_OUTSTANDING,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self._max = max_outstanding
        self._clock = clock
        self._expiry: OrderedDict[bytes, float] = OrderedDict()  # in issue order

    def __len__(self) -> int:
        return len(self._expiry)

    def issue(self) -> str:
        """A new ticket, valid for :attr:`ttl` seconds, once."""
        now = self._clock()
        self._purge(now)
        while len(self._expiry) >= self._max:
            self._expiry.popitem(last=False)
        ticket = secrets.token_urlsafe(32)
        self._expiry[_digest(ticket)] = now + self.ttl
        return ticket

    def redeem(self, ticket: str) -> bool:
        """True once for a ticket issued here and not expired; it is used up either way."""
        expires = self._expiry.pop(_digest(ticket), None)
        return expires is not None and self._clock() <= expires

    def _purge(self, now: float) -> None:
        while self._expiry:
            digest, expires = next(iter(self._expiry.items()))
            if expires >= now:
                return
            del self._expiry[digest]
