"""A frame's price updates as Redis commands: the ``SET``s, and their ``PUBLISH``es.

Kept apart from the sink so the hot loop (one pass per frame, formats inlined) reads
on its own. The bytes are exactly what ``hiredis.pack_command`` produces: the packer
in ``libs/redis_client/resp.py`` is held to hiredis by its tests, and these formats to
that packer by ``tests/libs/market_data/pipeline/test_packing.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from libs.market_data.keys import DEFAULT_KEYS, KeySpace
from libs.market_data.pipeline.processor import PriceUpdate
from libs.redis_client.resp import SetPublishPacker

__all__ = ["Batch", "FramePacker"]

_NAME_CACHE_LIMIT: Final = 100_000


class Batch:
    """What one write to Redis carried, handed back with its replies."""

    __slots__ = ("events", "kind", "updates")

    SET: Final = 0  # the cache writes of a batch of updates
    PUBLISH: Final = 1  # their events, sent once the writes landed
    NOTICE: Final = 2  # a status notice

    def __init__(self, kind: int, updates: Sequence[PriceUpdate], events: bytes = b"") -> None:
        self.kind = kind
        self.updates = updates
        self.events = events  # PUBLISH commands for a SET batch; a NOTICE's own payload


class FramePacker:
    """Packs updates into ``SET price:{SYM} ... EX ttl`` and ``PUBLISH price.updated.{SYM}``."""

    __slots__ = ("_keys", "_names", "_packer")

    def __init__(self, ttl: int, keys: KeySpace = DEFAULT_KEYS) -> None:
        self._packer = SetPublishPacker(ttl)
        self._keys = keys
        # symbol -> the fixed command heads of its key and channel, built once
        self._names: dict[str, tuple[bytes, bytes]] = {}

    def pack(
        self, updates: Sequence[PriceUpdate], latest: dict[str, PriceUpdate]
    ) -> tuple[bytes, bytes]:
        """The frame's SETs and its PUBLISHes; records each update as its symbol's newest.

        The packer's formats are inlined: two method calls per quote cost more than the
        formatting itself.
        """
        names = self._names
        ex = self._packer.set_suffix
        sets: list[bytes] = []
        events: list[bytes] = []
        set_append = sets.append
        event_append = events.append
        for update in updates:
            symbol, price_json, event_json = update
            heads = names.get(symbol)
            if heads is None:
                heads = self._heads(symbol)
            set_append(b"%s$%d\r\n%s%s" % (heads[0], len(price_json), price_json, ex))
            event_append(b"%s$%d\r\n%s\r\n" % (heads[1], len(event_json), event_json))
            latest[symbol] = update
        return b"".join(sets), b"".join(events)

    def events(self, updates: Sequence[PriceUpdate]) -> bytes:
        """The PUBLISHes alone, for the part of a frame whose writes landed."""
        publish = self._packer.pack_publish
        names = self._names
        return b"".join(publish((names.get(u[0]) or self._heads(u[0]))[1], u[2]) for u in updates)

    def _heads(self, symbol: str) -> tuple[bytes, bytes]:
        if len(self._names) >= _NAME_CACHE_LIMIT:
            self._names.clear()  # the whole market walks many symbols; keep memory bounded
        heads = self._packer.heads(
            self._keys.price_key(symbol).encode(), self._keys.price_channel(symbol).encode()
        )
        self._names[symbol] = heads
        return heads
