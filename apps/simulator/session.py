"""One client's protocol session: greeting, auth, subscriptions and the paced data loop.

A session sees the rest of the simulator only through :class:`SessionContext`
(``context.py``): the settings, the fault plan, the quote generator and its tapes, the
wire record and the registry of live sessions.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Final

import msgspec
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from apps.simulator.context import SessionContext
from apps.simulator.encoding import WireEncoder
from apps.simulator.market import SessionMarket
from apps.simulator.protocol import (
    FATAL_AUTH_CODES,
    InvalidSyntax,
    apply_change,
    decode_message,
    empty_subscriptions,
    error_message,
    error_text,
    quote_symbols,
    subscription_ack,
)
from apps.simulator.registry import Slot
from apps.simulator.tape import TAPE_MIN_RATE, QuoteTape
from libs.tasks import cancel_and_wait

__all__ = ["Session", "SessionContext"]

logger = logging.getLogger(__name__)

# Up to this many frames a second, each quote goes alone in its frame; beyond it,
# frames fill up to batch_size. Real Alpaca batches only under load, and a demo at
# 50 quotes/s should look like a live ticker rather than five bursts a second.
_UNBATCHED_FRAMES_PER_S: Final = 50.0
# After a hiccup the schedule catches up at most this far, then forgets the rest.
_MAX_BACKLOG_S: Final = 0.25
# Frames sent back to back before yielding to the loop, so one session cannot
# starve the readers and the other sessions.
_BURST_FRAMES: Final = 8
# A frame due sooner than this goes out now: event loops time in milliseconds (uvloop
# spins on shorter timers), and the fixed schedule keeps the average rate exact anyway.
_EARLY_S: Final = 0.001


def _frame_size(rate: float, batch_size: int) -> int:
    return max(1, min(batch_size, int(rate / _UNBATCHED_FRAMES_PER_S)))


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class Session:
    """One client socket: protocol state, subscriptions and the data loop."""

    def __init__(self, context: SessionContext, ws: ServerConnection, encoder: WireEncoder) -> None:
        self.ws = ws
        self.encoder = encoder
        self.authenticated = False
        self.subscriptions = empty_subscriptions()
        self.quote_symbols: tuple[str, ...] = ()  # the symbols the data loop walks
        # Trades, bars or crypto wanted: the frames come from here (apps/simulator/market.py).
        self.market: SessionMarket | None = None
        path = ws.request.path if ws.request is not None else ""
        self.crypto = path.startswith("/v1beta3/crypto/")
        # The connection-limit slot this session holds once authenticated (key, feed).
        self.slot: Slot | None = None
        self.closed = asyncio.Event()
        self._context = context
        self._cursor = 0
        self._tape: QuoteTape | None = None  # the walk order's tape, once streamed fast
        self._waiter: asyncio.Future[None] | None = None

    # -- sending ---------------------------------------------------------------

    async def send_bytes(self, data: bytes) -> None:
        """Send an encoded frame in this session's codec (text for JSON)."""
        await self.ws.send(data, text=not self.encoder.binary)

    async def send_control(self, message: dict[str, Any]) -> None:
        """Send a control message alone in its frame, as Alpaca does."""
        await self.send_bytes(self.encoder.encode([message]))

    async def send_error(self, code: int, msg: str | None = None) -> None:
        """Send an error frame (documented text by default)."""
        await self.send_control(error_message(code, msg))

    # -- data loop -------------------------------------------------------------

    def wake(self) -> None:
        """Cut the data loop's sleep short: pacing or subscriptions changed."""
        if self._waiter is not None:
            _resolve(self._waiter)

    async def _sleep_until(self, when: float | None) -> None:
        # A sleep that wake() can cut short: rate, pause and subscription changes
        # take effect at once instead of after the current frame interval.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        handle = loop.call_at(when, _resolve, waiter) if when is not None else None
        try:
            await waiter
        finally:
            self._waiter = None
            if handle is not None:
                handle.cancel()

    async def data_loop(self) -> None:
        """Send generated quotes at the plan's pace until the socket closes."""
        loop = asyncio.get_running_loop()
        faults = self._context.faults
        epoch = -1
        start = interval = 0.0
        per_frame = frames = burst = backlog = 0
        try:
            while True:
                pacing = faults.pacing
                if not (self.authenticated and pacing.streaming and self.quote_symbols):
                    epoch = -1
                    await self._sleep_until(None)
                    continue
                if epoch != pacing.epoch:
                    # Frame k is due at start + k * interval: a fixed schedule on the
                    # monotonic clock, so sleep overshoot never accumulates into drift.
                    epoch = pacing.epoch
                    per_frame = _frame_size(pacing.rate, pacing.batch_size)
                    interval = per_frame / pacing.rate
                    backlog = max(1, int(_MAX_BACKLOG_S / interval))
                    start = loop.time()
                    frames = 0
                now = loop.time()
                due_at = start + frames * interval
                if now < due_at - _EARLY_S:
                    burst = 0
                    await self._sleep_until(due_at)
                    continue
                late = int((now - due_at) / interval)
                if late > backlog:
                    frames += late - backlog
                data, sent = self._next_frame(per_frame, pacing.rate)
                await self.send_bytes(data)
                sent()  # counted once its send completed
                frames += 1
                burst += 1
                if burst >= _BURST_FRAMES:
                    burst = 0
                    await asyncio.sleep(0)
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception(
                "simulator data loop failed; closing the session", extra={"websocket": self.ws}
            )
            await self.ws.close(1011, "internal error")

    def _next_frame(self, count: int, rate: float) -> tuple[bytes, Callable[[], None]]:
        """The next data frame of ``count`` quotes, and what records it once sent."""
        context, market = self._context, self.market
        if market is None and not self.encoder.binary and rate >= TAPE_MIN_RATE:
            if self._tape is None:
                self._tape = context.tapes.get(self.quote_symbols, context.generator)
            if count <= self._tape.half:
                data, frame, self._cursor = self._tape.frame(self._cursor, count, time.time_ns())
                return data, functools.partial(context.record.tape_sent, frame)
        ticks, self._cursor = context.generator.next_ticks(self.quote_symbols, self._cursor, count)
        ns = time.time_ns()
        if market is None:  # stock quotes only: one encoder call
            data = self.encoder.encode_ticks(ticks, ns)
        else:
            data = self.encoder.encode(market.frame(ticks, ns))
        return data, functools.partial(context.record.ticks_sent, ticks, ns)

    # -- protocol --------------------------------------------------------------

    async def handle(self, message: str | bytes) -> None:
        """Answer one client message."""
        try:
            decoded = decode_message(message)
        except msgspec.DecodeError:
            await self.send_error(400)
            return
        if isinstance(decoded, dict):
            self._context.record.client_message(decoded)
        action = decoded.get("action") if isinstance(decoded, dict) else None
        if action == "auth":
            await self._auth(decoded)
        elif action in ("subscribe", "unsubscribe"):
            if not self.authenticated:
                await self.send_error(401)
                return
            try:
                await self._change_subscriptions(decoded, subscribe=action == "subscribe")
            except InvalidSyntax:
                await self.send_error(400)
        else:
            await self.send_error(400)

    async def _auth(self, message: dict[str, Any]) -> None:
        context = self._context
        config = context.config
        context.record.auth_attempted()
        if self.authenticated:
            await self.send_error(403)
            return
        code = context.faults.take_auth_failure()
        if code is None:
            if message.get("key") != config.api_key or message.get("secret") != (config.secret_key):
                code = 402
            elif (
                config.connection_limit is not None
                and context.registry.slots_taken(self._slot()) >= config.connection_limit
            ):
                code = 406
                logger.debug("simulator: connection limit exceeded", extra={"websocket": self.ws})
            else:
                self.authenticated = True
                self.slot = self._slot()
                await self.send_control({"T": "success", "msg": "authenticated"})
                self.wake()
                return
        await self.send_error(code)
        if code in FATAL_AUTH_CODES:
            await self.ws.close(1008, error_text(code))

    def _slot(self) -> Slot:
        # Alpaca's limit is per account and per endpoint: iex and sip count apart
        # (docs/deployment.md, "Rehearsing against the simulator").
        path = self.ws.request.path if self.ws.request is not None else ""
        return (self._context.config.api_key, path.partition("?")[0].rstrip("/"))

    async def _change_subscriptions(self, message: dict[str, Any], *, subscribe: bool) -> None:
        context = self._context
        if subscribe:
            rejection = context.faults.take_subscribe_rejection()
            if rejection is not None:
                await self.send_error(rejection)
                return
        updated = apply_change(
            self.subscriptions,
            message,
            subscribe=subscribe,
            symbol_limit=context.config.symbol_limit,
        )
        if updated is None:
            await self.send_error(405)
            return
        self.subscriptions = updated
        self.quote_symbols = quote_symbols(updated, self._context.universe)
        self.market = None
        self._tape = None
        if self.crypto or updated["trades"] or updated["bars"]:
            market = SessionMarket.of(updated, self._context.universe, crypto=self.crypto)
            self.market = market
            self.quote_symbols = market.symbols
        await self.send_control(subscription_ack(updated))
        self.wake()

    async def run(self) -> None:
        """Greet, enforce the auth timeout and answer messages until the socket closes."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._context.config.auth_timeout
        data_task = asyncio.create_task(self.data_loop(), name="simulator-data")
        try:
            await self.send_control({"T": "success", "msg": "connected"})
            while True:
                if self.authenticated:
                    message = await self.ws.recv()
                else:
                    try:
                        async with asyncio.timeout_at(deadline):
                            message = await self.ws.recv()
                    except TimeoutError:
                        await self.send_error(404)
                        await self.ws.close(1008, error_text(404))
                        return
                await self.handle(message)
        except ConnectionClosed:
            pass
        finally:
            await cancel_and_wait(data_task, quiet=True)
