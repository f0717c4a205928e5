"""Subscription changes from standbys to the leader, over Redis pub/sub (docs/leadership.md).

A standby's ``POST /subscribe`` must answer as the leader's does (201 once the broker
acknowledged, 409 with the refused symbols), and only the leader talks to the broker.
So the standby publishes a :class:`Request` on ``market_data.leader.requests`` and waits
on its own reply channel; the leader applies it to its registry (which subscribes at the
broker and saves the set) and publishes a :class:`Reply` with the saved set afterwards.

Every instance keeps one :class:`Mailbox`: one pub/sub connection for the requests, its
replies and ``market_data.status`` (where the ``leader.released`` notice wakes a standby).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

import msgspec
import redis.asyncio

from libs.market_data.exceptions import LeadershipError, MarketDataError, SubscriptionError
from libs.market_data.keys import KeySpace
from libs.redis_client import RedisClient, RedisConnectionParams
from libs.redis_client.client import translate_errors
from libs.tasks import cancel_and_wait

__all__ = ["Mailbox", "Reply", "Request", "RequestDesk", "RequestForwarder"]

logger = logging.getLogger(__name__)

_RETRY: Final = 0.2  # seconds between attempts to (re)open the pub/sub connection


class Request(msgspec.Struct, frozen=True):
    id: str
    reply_to: str
    op: str  # "add" | "remove"
    symbols: list[str]
    source: str


class Reply(msgspec.Struct, frozen=True):
    id: str
    ok: bool
    changed: list[str] = []
    sources: dict[str, list[str]] = {}
    code: int | None = None  # the broker's code when it refused
    message: str = ""
    refused: list[str] = []


_decode_request: Final = msgspec.json.Decoder(Request).decode
_decode_reply: Final = msgspec.json.Decoder(Reply).decode
_encode: Final = msgspec.json.Encoder().encode
_decode_notice: Final = msgspec.json.Decoder(dict[str, object]).decode

Handler = Callable[[bytes], None]


class Mailbox:
    """One pub/sub connection, reopened when lost; each channel's messages to its handler."""

    def __init__(
        self,
        params: RedisConnectionParams | Sequence[RedisConnectionParams],
        handlers: dict[str, Handler],
    ) -> None:
        # Several: a cluster's nodes, tried in turn (any node relays classic pub/sub).
        self._nodes = [params] if isinstance(params, RedisConnectionParams) else list(params)
        self._handlers = handlers
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()  # subscribed (cleared while reconnecting)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="leadership-mailbox")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def _run(self) -> None:
        attempt = 0
        while True:
            params = self._nodes[attempt % len(self._nodes)]
            attempt += 1
            # No read timeout: a quiet channel is not an error; a lost connection is.
            client = redis.asyncio.Redis(**{**params.redis_kwargs(), "socket_timeout": None})
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*self._handlers)
                self.ready.set()
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message.get("type") != "message":
                        continue
                    channel = message["channel"]
                    name = channel.decode() if isinstance(channel, bytes) else str(channel)
                    handler = self._handlers.get(name)
                    if handler is not None:
                        handler(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # redis-py's errors, or a handler's bug
                self.ready.clear()
                logger.debug("leadership mailbox reconnecting: %r", exc)
                await asyncio.sleep(_RETRY)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await client.aclose()


def is_release_notice(payload: bytes) -> bool:
    """A ``leader.released`` notice on ``market_data.status``."""
    if b"leader.released" not in payload:
        return False
    try:
        return _decode_notice(payload).get("event_type") == "leader.released"
    except msgspec.DecodeError:
        return False


class RequestForwarder:
    """A standby's side: send a change to the leader and wait for its answer."""

    def __init__(
        self,
        client: RedisClient,
        keys: KeySpace,
        instance: str,
        leader_live: Callable[[], bool],
        timeout: float,
    ) -> None:
        self._client = client
        self._keys = keys
        self.reply_channel = keys.leader_replies_prefix + instance
        self._leader_live = leader_live
        self._timeout = timeout
        self._waiting: dict[str, asyncio.Future[Reply]] = {}

    def on_reply(self, payload: bytes) -> None:
        try:
            reply = _decode_reply(payload)
        except msgspec.DecodeError:
            logger.warning("ignoring an unreadable leader reply")
            return
        waiter = self._waiting.pop(reply.id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    async def forward(
        self, op: str, symbols: list[str], source: str
    ) -> tuple[list[str], dict[str, list[str]]]:
        if not self._leader_live():
            raise LeadershipError("no live leader to apply the change; try again shortly")
        request = Request(secrets.token_hex(8), self.reply_channel, op, symbols, source)
        waiter: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting[request.id] = waiter
        try:
            with translate_errors(self._client.params, "PUBLISH leader request"):
                await self._client.redis.publish(
                    self._keys.leader_requests_channel, _encode(request)
                )
            async with asyncio.timeout(self._timeout):
                reply = await waiter
        except TimeoutError:
            raise LeadershipError(
                f"the leader did not answer within {self._timeout:g}s; try again"
            ) from None
        except MarketDataError:
            raise
        except Exception as exc:  # the Redis client's errors
            raise LeadershipError(f"could not reach the leader: {exc}") from exc
        finally:
            self._waiting.pop(request.id, None)
        if reply.ok:
            return reply.changed, reply.sources
        if reply.code is not None:
            raise SubscriptionError(reply.code, reply.message, reply.refused)
        raise LeadershipError(f"the leader could not apply the change: {reply.message}")


Apply = Callable[[str, list[str], str], Awaitable[list[str]]]


class RequestDesk:
    """The leader's side: apply each request to the registry and answer it."""

    def __init__(
        self,
        client: RedisClient,
        apply: Apply,
        sources: Callable[[], dict[str, list[str]]],
        leading: Callable[[], bool],
    ) -> None:
        self._client = client
        self._apply = apply
        self._sources = sources
        self._leading = leading
        self._tasks: set[asyncio.Task[None]] = set()
        self.answered = 0

    def on_request(self, payload: bytes) -> None:
        # Standbys see requests too (same channel); only a leader whose lease is
        # valid by its own clock answers (a paused ex-leader's clock says it is not).
        if not self._leading():
            return
        try:
            request = _decode_request(payload)
        except msgspec.DecodeError:
            logger.warning("ignoring an unreadable leader request")
            return
        task = asyncio.create_task(self._answer(request), name="leader-request")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, request: Request) -> None:
        try:
            changed = await self._apply(request.op, request.symbols, request.source)
            reply = Reply(request.id, True, changed=changed, sources=self._sources())
        except SubscriptionError as exc:
            reply = Reply(
                request.id, False, code=exc.code, message=exc.msg, refused=list(exc.symbols)
            )
        except (MarketDataError, ValueError) as exc:
            reply = Reply(request.id, False, message=str(exc))
        try:
            with translate_errors(self._client.params, "PUBLISH leader reply"):
                await self._client.redis.publish(request.reply_to, _encode(reply))
            self.answered += 1
        except MarketDataError:
            raise
        except Exception as exc:
            logger.warning("could not answer a standby's request: %s", exc)

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
