"""Status notices on ``market_data.status``, in order with the price writes.

Consumers learn about gaps from these (``stream.reconnected``, ``redis.recovered``...;
docs/architecture.md, "Gap notices"). They travel on the price writer's connection, so
a notice is never overtaken by the prices written before it. While writes do not land
the newest few are held and sent once they do.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from libs.market_data.pipeline.packing import Batch
from libs.redis_client.exceptions import RedisClientError
from libs.redis_client.writer import PipelinedWriter, pack_commands
from libs.telemetry import now_rfc3339

__all__ = ["Notices"]

_MAX_HELD: Final = 32
_encode: Final = msgspec.json.Encoder().encode


class Notices:
    """Encodes notices and sends or holds them."""

    __slots__ = ("_channel", "_held", "_writer", "published")

    def __init__(self, writer: PipelinedWriter[Batch], channel: str) -> None:
        self._writer = writer
        self._channel = channel
        self._held: deque[bytes] = deque(maxlen=_MAX_HELD)
        self.published = 0

    def publish(self, event: str, details: Mapping[str, Any], *, now: bool) -> None:
        """Send the notice (``now``), or hold it until :meth:`release`."""
        payload = _encode({"event_type": event, "timestamp": now_rfc3339(), **details})
        if now:
            self._send(payload)
        else:
            self._held.append(payload)

    def hold(self, payload: bytes) -> None:
        """Keep a notice whose write was lost, to send it again."""
        self._held.append(payload)

    def release(self) -> None:
        """Send the held notices, oldest first."""
        held = list(self._held)
        self._held.clear()
        for payload in held:
            self._send(payload)

    def _send(self, payload: bytes) -> None:
        command = pack_commands([(b"PUBLISH", self._channel, payload)])
        try:
            self._writer.send(command, 1, Batch(Batch.NOTICE, (), payload))
        except RedisClientError:
            self._held.append(payload)
            return
        self.published += 1
