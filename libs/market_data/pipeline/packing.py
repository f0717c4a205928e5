"""A frame's updates as Redis commands: one ``SET`` per topic, and every ``PUBLISH``.

Only the newest update of a topic in a frame needs its ``SET``: the cache ends the frame
holding it either way, and the sink publishes the frame's events only once its ``SET``s
landed, so the newest's ``SET`` still precedes its ``PUBLISH`` (docs/architecture.md,
"Fewer commands per quote"). Every update keeps its own ``PUBLISH``.

Kept apart from the sink so the hot loop (one pass per frame, formats inlined) reads
on its own. The bytes are exactly what ``hiredis.pack_command`` produces: the packer
in ``libs/redis_client/resp.py`` is held to hiredis by its tests, and these formats to
that packer by ``tests/libs/market_data/pipeline/test_packing.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from libs.market_data import native
from libs.market_data.keys import DEFAULT_KEYS, KeySpace
from libs.market_data.pipeline.processor import PriceUpdate
from libs.market_data.topics import Channel, parse_topic
from libs.redis_client.resp import SetPublishPacker

__all__ = ["Batch", "FramePacker"]

_NAME_CACHE_LIMIT: Final = 100_000


class Batch:
    """What one write to Redis carried, handed back with its replies."""

    __slots__ = ("events", "kind", "updates", "written")

    SET: Final = 0  # the cache writes of a batch of updates
    PUBLISH: Final = 1  # their events, sent once the writes landed
    NOTICE: Final = 2  # a status notice

    def __init__(
        self,
        kind: int,
        updates: Sequence[PriceUpdate],
        events: bytes = b"",
        written: Sequence[PriceUpdate] = (),
    ) -> None:
        self.kind = kind
        self.updates = updates
        self.events = events  # PUBLISH commands for a SET batch; a NOTICE's own payload
        # A SET batch's updates that have a SET, in command order: the newest per topic.
        self.written = written


class FramePacker:
    """Packs updates into ``SET price:{SYM} ... EX ttl`` and ``PUBLISH price.updated.{SYM}``
    (``trade:``/``trade.updated.``, ``bar:``/``bar.updated.`` for those topics)."""

    __slots__ = ("_keys", "_names", "_packer")

    def __init__(self, ttl: int, keys: KeySpace = DEFAULT_KEYS) -> None:
        self._packer = SetPublishPacker(ttl, keys.publish_command)  # SPUBLISH: cluster
        self._keys = keys
        # symbol -> the fixed command heads of its key and channel, built once
        self._names: dict[str, tuple[bytes, bytes]] = {}

    def pack(
        self, updates: Sequence[PriceUpdate], latest: dict[str, PriceUpdate]
    ) -> tuple[bytes, bytes, list[PriceUpdate]]:
        """The frame's SETs (newest per topic), its PUBLISHes (all), and the updates the
        SETs carry, in command order; records each topic's newest in ``latest``.

        The packer's formats are inlined: two method calls per quote cost more than the
        formatting itself.
        """
        names = self._names
        ex = self._packer.set_suffix
        native_pack = native.pack
        if native_pack is not None and type(updates) is list:  # the same loop, in C
            return native_pack(updates, names, self._heads, ex, latest)
        newest: dict[str, PriceUpdate] = {}
        events: list[bytes] = []
        event_append = events.append
        for update in updates:
            topic = update[0]
            event_json = update[2]
            heads = names.get(topic)
            if heads is None:
                heads = self._heads(topic)
            event_append(b"%s$%d\r\n%s\r\n" % (heads[1], len(event_json), event_json))
            newest[topic] = update
        latest.update(newest)
        written = list(newest.values())
        sets = [
            b"%s$%d\r\n%s%s" % ((names.get(u[0]) or self._heads(u[0]))[0], len(u[1]), u[1], ex)
            for u in written
        ]
        return b"".join(sets), b"".join(events), written

    def events(self, updates: Sequence[PriceUpdate]) -> bytes:
        """The PUBLISHes alone, for the part of a frame whose writes landed."""
        publish = self._packer.pack_publish
        names = self._names
        return b"".join(publish((names.get(u[0]) or self._heads(u[0]))[1], u[2]) for u in updates)

    def _heads(self, topic: str) -> tuple[bytes, bytes]:
        if len(self._names) >= _NAME_CACHE_LIMIT:
            self._names.clear()  # the whole market walks many symbols; keep memory bounded
        channel, symbol = parse_topic(topic)
        keys = self._keys
        if channel is Channel.TRADES:
            key, name = keys.trade_key(symbol), keys.trade_channel(symbol)
        elif channel is Channel.BARS:
            key, name = keys.bar_key(symbol), keys.bar_channel(symbol)
        else:
            key, name = keys.price_key(symbol), keys.price_channel(symbol)
        heads = self._packer.heads(key.encode(), name.encode())
        self._names[topic] = heads
        return heads
