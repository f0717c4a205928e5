"""Where ``market-data watch`` gets its prices: the service's stream, or Redis itself.

Each feed is an async iterator of :data:`~apps.market_data_service.cli.board.BoardMessage`
records, so the board never knows which one it is fed by:

- :func:`api_feed`: the WebSocket ``/api/v1/stream`` of a running service (the API key,
  if any, as ``X-API-Key``), reconnecting with backoff; a refusal (401, 403, 404) ends
  the command with one line, as the other client commands do.
- :func:`redis_feed`: :class:`~libs.market_data.PriceSubscriber` on a Redis URL, which
  detects gaps itself (docs/architecture.md, "Sequence numbers").

:func:`parse_frame` (pure) reads the stream's JSON messages: one object, or an array of
them per frame; numbers are exact ``Decimal`` from their text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final
from urllib.parse import urlsplit, urlunsplit

from apps.market_data_service.cli.board import (
    BoardMessage,
    CoalescedMessage,
    LinkMessage,
    NoticeMessage,
    PriceMessage,
    Quote,
    ResyncMessage,
)
from apps.market_data_service.cli.client import (
    API_KEY_HEADER,
    EXIT_USAGE,
    ApiKey,
    CommandError,
    Reply,
    failure_line,
)
from libs.market_data.backoff import BackoffPolicy
from libs.market_data.consumers.records import LivePrice, SubscriberUpdate

__all__ = ["STREAM_PATH", "api_feed", "parse_frame", "redis_feed", "stream_url"]

STREAM_PATH: Final = "/api/v1/stream"
# Quick first retries, then every few seconds for as long as the user watches.
_BACKOFF: Final = BackoffPolicy(base=0.2, maximum=5.0, max_attempts=1_000_000)
_FATAL_STATUSES: Final = frozenset({401, 403, 404})
_MAX_FRAME: Final = 8 * 1024 * 1024
_SHOWN: Final = 120  # characters of an unexpected message shown


def stream_url(api: str) -> str:
    """``http://host:port`` -> ``ws://host:port/api/v1/stream`` (``https`` -> ``wss``)."""
    parts = urlsplit(api)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/") + STREAM_PATH, "", ""))


# -- the stream's messages -----------------------------------------------------------------------


def _decimal(value: object) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def _int(value: object) -> int:
    number = _decimal(value)
    return int(number) if number is not None and number == number.to_integral_value() else 0


def _size(value: object) -> Decimal:
    # A JSON integer (older services) or decimal text; a bad or negative one shows as 0.
    number = _decimal(value)
    return number if number is not None and not number.is_signed() else Decimal(0)


def _quote(data: object) -> Quote | None:
    if not isinstance(data, dict) or not isinstance(data.get("symbol"), str):
        return None
    bid, ask = _decimal(data.get("bid")), _decimal(data.get("ask"))
    mid = _decimal(data.get("mid", data.get("price")))
    if bid is None or ask is None:
        return None
    return Quote(
        symbol=data["symbol"],
        bid=bid,
        ask=ask,
        mid=mid if mid is not None else (bid + ask) / 2,
        bid_size=_size(data.get("bid_size")),
        ask_size=_size(data.get("ask_size")),
        timestamp=str(data.get("timestamp") or ""),
        seq=_int(data.get("seq")),
        epoch=str(data.get("epoch") or ""),
    )


def _message(item: object) -> BoardMessage:
    if not isinstance(item, dict):
        return NoticeMessage(f"unexpected message: {_short(item)}", error=True)
    kind = item.get("type")
    if kind in ("price", "snapshot"):
        quote = _quote(item.get("data"))
        if quote is not None:
            return PriceMessage(quote, snapshot=kind == "snapshot")
        data = item.get("data")
        if kind == "snapshot" and data is None and isinstance(item.get("symbol"), str):
            return NoticeMessage(f"{item['symbol']}: no cached price yet")
        return NoticeMessage(f"unreadable {kind}: {_short(data)}", error=True)
    symbols = item.get("symbols")
    names = tuple(str(s) for s in symbols) if isinstance(symbols, list) else ()
    if kind == "resync":
        return ResyncMessage(names, str(item.get("reason") or "unspecified"))
    if kind == "coalesced":
        # Latest-value: the service replaced older updates while this client was behind.
        replaced = item.get("replaced")
        return CoalescedMessage(replaced if isinstance(replaced, int) else 0, names)
    if kind == "subscriptions":
        return NoticeMessage(f"subscribed: {_few(names)}")
    if kind == "error":
        return NoticeMessage(f"the service says: {item.get('message')}", error=True)
    return NoticeMessage(f"{kind}: {_short(item)}")


def _few(names: tuple[str, ...]) -> str:
    return ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")


def _short(value: object) -> str:
    text = json.dumps(value, default=str, separators=(",", ":"))
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def parse_frame(frame: str | bytes) -> list[BoardMessage]:
    """One WebSocket frame of the stream as board messages (never raises)."""
    try:
        parsed: Any = json.loads(frame, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return [NoticeMessage("a frame that is not JSON", error=True)]
    items = parsed if isinstance(parsed, list) else [parsed]
    return [_message(item) for item in items]


# -- the feeds --------------------------------------------------------------------------------


def _reply_of(exc: Any) -> Reply:
    response = exc.response
    body: Any = bytes(response.body or b"").decode("utf-8", "replace")
    with contextlib.suppress(ValueError):
        body = json.loads(body)
    return Reply(response.status_code, body, response.reason_phrase)


async def api_feed(
    api: str, key: ApiKey | None, symbols: Sequence[str], backoff: BackoffPolicy = _BACKOFF
) -> AsyncIterator[BoardMessage]:
    """Messages of the service's stream for ``symbols``, reconnecting until stopped."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import InvalidStatus, WebSocketException

    url = stream_url(api)
    headers = {API_KEY_HEADER: key.value} if key is not None else {}
    subscribe = json.dumps({"action": "subscribe", "symbols": list(symbols)})
    failures = 0
    yield LinkMessage("connecting", url)
    while True:
        try:
            async with connect(
                url, additional_headers=headers, open_timeout=10, max_size=_MAX_FRAME
            ) as ws:
                await ws.send(subscribe)
                failures = 0
                yield LinkMessage("connected", url)
                async for frame in ws:
                    for message in parse_frame(frame):
                        yield message
                reason = f"closed by the service ({ws.close_code} {ws.close_reason})".strip()
        except InvalidStatus as exc:
            reply = _reply_of(exc)
            if reply.status == 403:
                # The service refuses a stream without a body (a 401 is also possible).
                raise CommandError(f"{STREAM_PATH}: {_refused(key)}") from None
            if reply.status in _FATAL_STATUSES:
                raise CommandError(f"{STREAM_PATH}: {failure_line(reply, key)}") from None
            reason = f"HTTP {reply.status}"
        except (WebSocketException, OSError, TimeoutError) as exc:
            reason = str(exc) or type(exc).__name__
        failures += 1
        yield LinkMessage("reconnecting", reason)
        await asyncio.sleep(backoff.delay(failures))


def _refused(key: ApiKey | None) -> str:
    why = (
        f"the key from {key.source} was refused"
        if key is not None
        else "no API key sent: set MARKET_DATA_API_KEY (environment or ./.env) or "
        "MARKET_DATA_API_KEY_FILE, or pass --api-key"
    )
    return f"HTTP 403: the service refused the stream ({why})"


def _price(price: LivePrice, snapshot: bool) -> PriceMessage:
    quote = Quote(
        price.symbol, price.bid, price.ask, price.mid, price.bid_size, price.ask_size,
        price.timestamp, price.seq, price.epoch,
    )  # fmt: skip
    return PriceMessage(quote, snapshot=snapshot)


def _from_update(update: SubscriberUpdate) -> BoardMessage | None:
    if update.kind == "resync":
        return ResyncMessage(update.symbols, update.reason)
    if update.price is None:
        return None
    return _price(update.price, snapshot=update.kind == "snapshot")


async def redis_feed(
    url: str, symbols: Sequence[str], namespace: str = ""
) -> AsyncIterator[BoardMessage]:
    """Messages of a :class:`~libs.market_data.PriceSubscriber` on ``url``."""
    from libs.market_data import PriceSubscriber, SubscriberError
    from libs.market_data.keys import KeySpace
    from libs.redis_client import RedisConnectionParams

    try:
        params = RedisConnectionParams.from_url(url)
        keys = KeySpace(namespace)
    except ValueError as exc:
        raise CommandError(f"--redis / --namespace: {exc}", EXIT_USAGE) from None
    shown = params.redacted_url()
    yield LinkMessage("connecting", shown)
    subscriber = PriceSubscriber(params, symbols, keys=keys)
    try:
        await subscriber.connect()
        yield LinkMessage("connected", shown)
        async for update in subscriber:
            if update.kind == "resync" and update.reason == "reconnected":
                # The subscriber reconnected on its own; the board counts it as one.
                yield LinkMessage("reconnecting", "the Redis connection was lost")
                yield LinkMessage("connected", shown)
            message = _from_update(update)
            if message is not None:
                yield message
    except SubscriberError as exc:
        raise CommandError(str(exc)) from None
    finally:
        await subscriber.close()
