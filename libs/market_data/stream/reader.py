"""What one Alpaca connection does with each frame it receives: decode, count, hand on.

:class:`FrameReader` is the base of
:class:`~libs.market_data.stream.connection.AlpacaConnection`, on top of
:class:`~libs.market_data.stream.status.ConnectionStatus`: the per-frame path (the feed's
decoder, the counters, market data to ``on_frame``), the read loop with its fair turns
(:mod:`~libs.market_data.stream.turns`), control messages to the session and
subscription replies to their requester (:mod:`~libs.market_data.stream.changes`).
Opening, closing and retrying sockets stay in ``connection``. A base rather than a
helper object, so the per-frame path bumps the counters as plain attributes, without a
call.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection

from libs.market_data.backoff import BackoffPolicy
from libs.market_data.stream.changes import SubscriptionChanges
from libs.market_data.stream.clock import DataClock
from libs.market_data.stream.protocol import ControlMessage, DecodedFrame
from libs.market_data.stream.records import StatusNotice
from libs.market_data.stream.session import Answered, Fail, Reported, StreamSession
from libs.market_data.stream.status import ConnectionStatus
from libs.market_data.stream.turns import DEFAULT_TURN, TurnBudget

__all__ = ["FrameReader"]

# The connection's logger: these are the connection's dropped frames and error frames.
logger = logging.getLogger("libs.market_data.stream.connection")


class FrameReader(ConnectionStatus):
    """Decodes what a connection's sockets receive, counts it and passes it on."""

    # Seconds the read loop may hold the event loop before it gives a turn (turns.py).
    turn_budget: float = DEFAULT_TURN
    # The connection's subscription changes: the read loop hands them their replies.
    _changes: SubscriptionChanges

    def __init__(
        self,
        url: str,
        session: StreamSession,
        clock: DataClock,
        backoff: BackoffPolicy,
        on_notice: Callable[[StatusNotice], None] | None,
        *,
        decode: Callable[[bytes | str], DecodedFrame],
        on_frame: Callable[[DecodedFrame], Awaitable[None]],
        step_timeout: float,
    ) -> None:
        super().__init__(url, session, clock, backoff, on_notice)
        # The feed's decoder: stocks by default, decode_crypto_frame for the crypto feed.
        self._decode = decode
        self._on_frame = on_frame
        self._step_timeout = step_timeout

    async def _next_control(self, ws: ClientConnection) -> ControlMessage:
        """Read until a control message, passing any market data on; bounded in time."""
        async with asyncio.timeout(self._step_timeout):
            while True:
                frame = await self._receive(ws)
                if frame.controls:
                    return frame.controls[0]

    async def _receive(self, ws: ClientConnection) -> DecodedFrame:
        return await self._take(await ws.recv(decode=False))

    async def _take(self, message: bytes | str) -> DecodedFrame:
        # The hot path: per frame only counters, one clock store and on_frame.
        self.frames_received += 1
        frame = self._decode(message)
        if frame.malformed:
            self.malformed_messages += frame.malformed
            logger.warning("dropped %d malformed message(s): %s", frame.malformed, frame.errors)
        self.other_messages += frame.other
        if frame.has_data():
            self.last_data_at = time.time()
            self.reconnect_attempts = 0
            await self._on_frame(frame)
        return frame

    async def _read_loop(self, ws: ClientConnection) -> None:
        turns = TurnBudget(time.monotonic(), self.turn_budget)  # stream/turns.py
        while True:
            message = await ws.recv(decode=False)
            turns.received(time.monotonic())
            frame = await self._take(message)
            for control in frame.controls:
                self._on_control(control)
            if turns.due(time.monotonic()):
                await asyncio.sleep(0)

    def _on_control(self, control: ControlMessage) -> None:
        event = self._session.receive(control)
        if isinstance(event, Answered):
            self._changes.answered(event)
        elif isinstance(event, Reported | Fail):
            self.last_error = str(event.error)
            logger.warning("server error frame: %s", event.error)
            if isinstance(event, Fail):
                raise event.error
