"""RESP for the one command pair on the hot path: ``SET key value EX ttl`` + ``PUBLISH``.

(``SPUBLISH`` on a Redis Cluster, docs/cluster.md.)

``hiredis.pack_command`` costs about 0.4 µs a command from Python; the hot path sends two
per quote. Here the parts that never change for a symbol (command, key, channel, TTL)
are encoded once and each quote costs one bytes formatting. The output is byte-for-byte
what hiredis produces (tests hold the two together and run it against a real server).
"""

from __future__ import annotations

__all__ = ["SetPublishPacker"]


class SetPublishPacker:
    """Packs ``SET key value EX ttl`` followed by ``PUBLISH channel message``."""

    __slots__ = ("_publish", "set_suffix")

    def __init__(self, ttl: int, publish: str = "PUBLISH") -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        if publish not in ("PUBLISH", "SPUBLISH"):
            raise ValueError("publish must be PUBLISH or SPUBLISH (Redis Cluster)")
        self._publish = b"$%d\r\n%s\r\n" % (len(publish), publish.encode())
        ttl_text = b"%d" % ttl
        # What follows a SET's value: "EX <ttl>" (a caller inlining pack_set uses it).
        self.set_suffix = b"\r\n$2\r\nEX\r\n$%d\r\n%s\r\n" % (len(ttl_text), ttl_text)

    def heads(self, key: bytes, channel: bytes) -> tuple[bytes, bytes]:
        """The fixed prefixes of both commands for one key/channel pair; cache them."""
        return (
            b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n" % (len(key), key),
            b"*3\r\n%s$%d\r\n%s\r\n" % (self._publish, len(channel), channel),
        )

    def pack_set(self, head: bytes, value: bytes) -> bytes:
        """``SET key value EX ttl`` alone, ``head`` being the first of :meth:`heads`."""
        return b"%s$%d\r\n%s%s" % (head, len(value), value, self.set_suffix)

    @staticmethod
    def pack_publish(head: bytes, message: bytes) -> bytes:
        """``PUBLISH channel message`` alone, ``head`` being the second of :meth:`heads`."""
        return b"%s$%d\r\n%s\r\n" % (head, len(message), message)

    def pack(self, heads: tuple[bytes, bytes], value: bytes, message: bytes) -> bytes:
        """Both commands for one quote, ready to write."""
        return b"%s$%d\r\n%s%s%s$%d\r\n%s\r\n" % (
            heads[0],
            len(value),
            value,
            self.set_suffix,
            heads[1],
            len(message),
            message,
        )
