"""Counting the replies of a write-only pipelined connection, in bulk.

The pipelined writer (``writer.py``) only ever sends commands that answer with one line
(``SET``, ``PUBLISH``...), so it matches replies to batches by counting lines: one C
scan per read instead of a parser call per reply. Error replies are located by their
position, so a caller learns which of its commands Redis refused.
"""

from __future__ import annotations

from libs.redis_client.exceptions import RedisConnectionError

__all__ = ["RedisProtocolError", "ReplyCounter"]


class RedisProtocolError(RedisConnectionError):
    """Redis answered with something this writer cannot have asked for."""


class ReplyCounter:
    """Counts single-line RESP replies (``+status``, ``-error``, ``:integer``) in bulk.

    Every command this writer is for (SET, PUBLISH, EXPIRE, DEL, AUTH, SELECT, PING)
    answers with exactly one line, so a reply is a CRLF and counting them costs one C
    scan per read instead of a parser call per reply. A multi-line reply (bulk string
    or array) means the writer was misused; it is refused rather than miscounted.
    """

    __slots__ = ("_partial", "error_lines", "errors", "last_error")

    def __init__(self) -> None:
        self._partial = b""
        self.errors = 0
        self.last_error: str | None = None
        # (position among the replies the last feed() completed, error text); empty
        # unless that feed held an error reply: the common path allocates nothing.
        self.error_lines: list[tuple[int, str]] = []

    def feed(self, data: bytes) -> int:
        """Take received bytes; return how many complete replies they finish."""
        if self.error_lines:
            self.error_lines = []
        if self._partial:
            data = self._partial + data
        end = data.rfind(b"\r\n")
        if end < 0:
            self._partial = data
            return 0
        complete = data[: end + 2]
        self._partial = data[end + 2 :]
        if complete[0] in b"$*" or b"\n$" in complete or b"\n*" in complete:
            raise RedisProtocolError("multi-line reply on a write-only connection")
        if complete[0] == 45 or b"\n-" in complete:  # 45 == ord("-")
            lines = complete.split(b"\r\n")
            self.error_lines = [
                (i, line[1:].decode(errors="replace"))
                for i, line in enumerate(lines)
                if line.startswith(b"-")
            ]
            self.errors += len(self.error_lines)
            self.last_error = self.error_lines[-1][1]
        return complete.count(b"\r\n")
