"""Frames injected into every authenticated session, and connections dropped on demand."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final

from websockets.exceptions import ConnectionClosed

from apps.simulator.encoding import WireEncoder
from apps.simulator.protocol import error_message
from apps.simulator.quotes import rfc3339_ns
from apps.simulator.record import WireRecord
from apps.simulator.registry import SessionRegistry

__all__ = ["Broadcaster"]

logger = logging.getLogger(__name__)

_DROP_WAIT_S: Final = 5.0


async def _gather(sends: Iterable[Awaitable[None]]) -> None:
    # A socket that died meanwhile must not stop the frame reaching the others.
    results = await asyncio.gather(*sends, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception) and not isinstance(result, ConnectionClosed):
            logger.warning("simulator send failed: %r", result)


def _encoding(frame: list[dict[str, Any]]) -> Callable[[WireEncoder], bytes]:
    return lambda encoder: encoder.encode(frame)


class Broadcaster:
    """Sends test-chosen frames to the registry's authenticated sessions."""

    def __init__(self, registry: SessionRegistry, record: WireRecord) -> None:
        self._registry = registry
        self._record = record

    async def send_quotes(self, quotes: Iterable[Mapping[str, Any]]) -> None:
        """One frame of these quote objects; missing ``T`` is ``"q"``, missing ``t`` now.

        Objects of crypto pairs (``S`` with a slash) go to the crypto-feed sessions, the
        others to the stock-feed ones, as each feed only carries its own symbols.
        """
        now = time.time_ns()
        frame: list[dict[str, Any]] = []
        for quote in quotes:
            message: dict[str, Any] = {"T": quote.get("T", "q")}
            message.update(quote)
            message.setdefault("t", rfc3339_ns(now))
            frame.append(message)
        crypto = [m for m in frame if "/" in str(m.get("S", ""))]
        stocks = [m for m in frame if "/" not in str(m.get("S", ""))]
        for part, is_crypto in ((stocks, False), (crypto, True)):
            if part or not frame:
                await self.send_encoded(_encoding(part), crypto=is_crypto)
        self._record.quotes_injected(frame)

    async def send_raw(self, frame: str | bytes) -> None:
        """Exactly ``frame``: text if ``str``, else binary."""
        await _gather(session.ws.send(frame) for session in self._registry.authenticated())

    async def send_error(self, code: int, msg: str | None = None) -> None:
        """An error frame (documented text by default)."""
        message = error_message(code, msg)
        await self.send_encoded(lambda encoder: encoder.encode([message]))

    async def send_encoded(
        self, encode: Callable[[WireEncoder], bytes], *, crypto: bool | None = None
    ) -> None:
        """``encode``'s frame, built once per codec in use; ``crypto``: to the sessions of
        that feed only (``None``: every session)."""
        frames: dict[bool, bytes] = {}
        sends = []
        for session in self._registry.authenticated():
            if crypto is not None and session.crypto is not crypto:
                continue
            encoder = session.encoder
            if encoder.binary not in frames:
                frames[encoder.binary] = encode(encoder)
            sends.append(session.send_bytes(frames[encoder.binary]))
        await _gather(sends)

    async def drop_connections(self, clean: bool = False) -> None:
        """Drop every open socket (abort, or close 1001) and wait until their sessions ended."""
        sessions = self._registry.sessions()
        if clean:
            await _gather(session.ws.close(1001, "going away") for session in sessions)
        else:
            for session in sessions:
                session.ws.transport.abort()
        waits = [session.closed.wait() for session in sessions]
        if waits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(_DROP_WAIT_S):
                    await asyncio.gather(*waits)
