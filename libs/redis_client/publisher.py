"""``EventPublisher``: PUBLISH events as JSON on Redis pub/sub.

Events are JSON text on the wire. Decimals travel as strings holding the exact
decimal (``"150.05"``, never a float) and datetimes as ISO 8601: this is what
``model_dump_json()`` produces for a pydantic model, and what the dict path produces
too, so ``publish(channel, event)`` and ``publish(channel, event.model_dump())`` (the
spec's form) put the same values on the wire.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Self, Unpack

import msgspec
from pydantic import BaseModel

from libs.redis_client.client import DEFAULT_RETRIES, ClientOptions, RedisClient, translate_errors
from libs.redis_client.params import RedisConnectionParams

__all__ = ["EventPublisher", "Message", "encode_message"]

logger = logging.getLogger(__name__)

Message = BaseModel | Mapping[str, Any] | list[Any] | tuple[Any, ...] | str | bytes


def _encode_nested(obj: Any) -> Any:
    # msgspec already writes Decimal as a string and datetime as ISO 8601; this only
    # covers a pydantic model nested inside a dict.
    if isinstance(obj, BaseModel):
        return obj.model_dump(mode="json")
    raise NotImplementedError(f"cannot encode {type(obj).__name__} as JSON")


_encoder = msgspec.json.Encoder(enc_hook=_encode_nested, decimal_format="string")


def encode_message(message: Message) -> bytes | str:
    """The wire form of ``message``: models and containers as JSON, text and bytes as is."""
    if isinstance(message, bytes | str):
        return message
    if isinstance(message, BaseModel):
        return message.model_dump_json()
    try:
        return _encoder.encode(message)
    except (TypeError, NotImplementedError) as exc:
        raise TypeError(f"message is not JSON-serialisable: {exc}") from exc


class EventPublisher:
    """Publishes events on Redis channels.

    ``EventPublisher(host="localhost", port=6379)`` opens its own connection pool (the
    spec's form); ``EventPublisher(client=redis_client)`` shares an existing client's
    pool instead, and then ``close()`` leaves that client open.
    """

    def __init__(
        self,
        host: str = "localhost",
        port: int = 6379,
        *,
        client: RedisClient | None = None,
        **options: Unpack[ClientOptions],
    ) -> None:
        if client is not None and options.get("params") is not None:
            raise TypeError("give either client= or params=, not both")
        self._owns_client = client is None
        if client is None:
            client = RedisClient(host, port, **options)
        self.client: RedisClient = client

    @classmethod
    def from_url(cls, url: str, *, retries: int = DEFAULT_RETRIES) -> Self:
        """Publisher for a ``redis://``, ``rediss://`` or ``unix://`` URL."""
        return cls(params=RedisConnectionParams.from_url(url), retries=retries)

    @property
    def params(self) -> RedisConnectionParams:
        return self.client.params

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params.redacted_url()!r})"

    async def publish(self, channel: str, message: Message) -> int:
        """PUBLISH ``message`` on ``channel``; returns how many subscribers received it.

        Zero receivers is not an error: pub/sub is fire-and-forget by design.
        """
        payload = encode_message(message)
        with translate_errors(self.params, f"PUBLISH {channel}"):
            receivers: int = await self.client.redis.publish(channel, payload)
        return receivers

    async def close(self) -> None:
        """Close the connection pool, unless it belongs to a shared client."""
        if self._owns_client:
            await self.client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
