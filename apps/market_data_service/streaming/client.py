"""One client's outgoing buffer and the slow-client policy, without I/O (docs/streaming.md).

The hub offers messages; the client's writer takes everything pending as one frame,
says when the send starts and ends, and the hub's watchdog asks :meth:`ClientBuffer.check`
whether the client must go. Nothing here blocks or knows about sockets, so the policy
is tested with a clock and no network.

The policy, in order:

1. A client that keeps up gets every update, in order, several per frame.
2. Behind (its last send has not finished, or :attr:`ClientPolicy.soft_pending` messages
   wait), a new price replaces the pending one of the same symbol: latest-value, so the
   buffer holds at most one price per symbol plus the control messages. The next frame
   starts with ``{"type":"coalesced","replaced":N,"symbols":[...]}``.
3. A client behind for longer than :attr:`ClientPolicy.max_behind` seconds (from the
   first offer that found it behind to the first send that leaves nothing pending), or
   whose send has been blocked that long, or with more than
   :attr:`ClientPolicy.max_pending_bytes` waiting, is closed: 1008 and the reason.

Control messages (snapshot, resync, subscriptions, error) are never replaced, and a
price that follows one never replaces a price queued before it: per symbol, the client
never goes back in time.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from apps.market_data_service.streaming.messages import encode_coalesced

__all__ = ["CLOSE_CAUSES", "ClientBuffer", "ClientPolicy", "ClientState"]

_NO_SYMBOL: Final = ""
# Why the policy closed a client, as a bounded label for /metrics (the reason is text).
CLOSE_CAUSES: Final = ("send_blocked", "behind", "pending_bytes")


@dataclass(frozen=True, slots=True)
class ClientPolicy:
    """The slow-client limits (docs/streaming.md, "Slow clients")."""

    max_behind: float = 5.0  # seconds behind (or one send blocked) before closing
    max_pending_bytes: int = 1 << 20  # bytes waiting in this buffer before closing
    soft_pending: int = 2000  # messages waiting before prices coalesce anyway
    max_frame_messages: int = 1000  # messages per frame at most
    close_grace: float = 2.0  # seconds the close (1008) may take before the socket is cut
    # Seconds a woken writer waits for more before it sends: fewer, larger frames
    # (one write, one frame header, one client wake-up) for a little latency.
    batch_delay: float = 0.005


class ClientState(StrEnum):
    OPEN = "open"
    CLOSING = "closing"  # the policy condemned it: the shell closes the socket (1008)


class ClientBuffer:
    """Pending messages of one client, the coalescing, and the verdict."""

    def __init__(self, policy: ClientPolicy | None = None) -> None:
        self.policy = policy or ClientPolicy()
        self.state = ClientState.OPEN
        self.reason = ""
        self.cause = ""  # one of CLOSE_CAUSES once closed
        # Pending (symbol or "", payload) in order; _open[symbol] is the index of the
        # symbol's price a newer one may replace (none after a control message).
        self._entries: list[tuple[str, bytes]] = []
        self._open: dict[str, int] = {}
        self._bytes = 0
        self._sending_since: float | None = None
        self._behind_since: float | None = None
        self._replaced = 0
        self._replaced_symbols: set[str] = set()
        # Counters, for the tests and the bench.
        self.messages_sent = 0
        self.frames_sent = 0
        self.replaced_total = 0

    # -- offers (the hub) -------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._entries)

    @property
    def pending_bytes(self) -> int:
        return self._bytes

    def behind(self) -> bool:
        """Whether the client cannot take more right now (coalescing is on)."""
        return self._sending_since is not None or len(self._entries) >= self.policy.soft_pending

    def offer_price(self, symbol: str, payload: bytes, now: float) -> None:
        """Queue an update of ``symbol``; replaces the pending one while behind."""
        if self.state is not ClientState.OPEN:
            return
        if self.behind():
            if self._behind_since is None:
                self._behind_since = now
            index = self._open.get(symbol)
            if index is not None:
                old = self._entries[index][1]
                self._entries[index] = (symbol, payload)
                self._bytes += len(payload) - len(old)
                self._replaced += 1
                self.replaced_total += 1
                self._replaced_symbols.add(symbol)
                return
        self._open[symbol] = len(self._entries)
        self._entries.append((symbol, payload))
        self._bytes += len(payload)

    def offer_control(self, payload: bytes, now: float) -> None:
        """Queue a message that is never replaced (snapshot, resync, error ...)."""
        if self.state is not ClientState.OPEN:
            return
        if self.behind() and self._behind_since is None:
            self._behind_since = now
        self._open.clear()  # prices after it must not overtake it
        self._entries.append((_NO_SYMBOL, payload))
        self._bytes += len(payload)

    # -- the writer ---------------------------------------------------------------------------

    def take(self) -> list[bytes]:
        """The next frame's messages (empty when nothing is pending)."""
        if not self._entries:
            return []
        limit = self.policy.max_frame_messages
        batch = self._entries[:limit]
        if len(batch) == len(self._entries):
            self._entries = []
            self._open.clear()
        else:
            # Rare (a burst above the frame limit): the rest keeps its replaceable prices.
            self._entries = self._entries[limit:]
            self._open = {s: i for i, (s, _) in enumerate(self._entries) if s}
            self._reseal()
        messages = [payload for _, payload in batch]
        self._bytes -= sum(len(m) for m in messages)
        if self._replaced:
            messages.insert(0, encode_coalesced(self._replaced, self._replaced_symbols))
            self._replaced = 0
            self._replaced_symbols = set()
        return messages

    def _reseal(self) -> None:
        # Only prices after the last control message stay replaceable.
        last_control = max((i for i, (s, _) in enumerate(self._entries) if not s), default=-1)
        self._open = {s: i for s, i in self._open.items() if i > last_control}

    def send_started(self, now: float) -> None:
        self._sending_since = now

    def send_finished(self, now: float, messages: int) -> None:
        self._sending_since = None
        self.frames_sent += 1
        self.messages_sent += messages
        if not self._entries:
            self._behind_since = None  # caught up

    # -- the verdict (the hub's watchdog) -------------------------------------------------------

    def check(self, now: float) -> str | None:
        """The reason to close this client now, or None while it may stay."""
        if self.state is ClientState.CLOSING:
            return self.reason
        limit = self.policy.max_behind
        if self._sending_since is not None and now - self._sending_since > limit:
            return self._close(
                f"too slow: a send blocked for more than {limit:g} s", "send_blocked"
            )
        if self._behind_since is not None and now - self._behind_since > limit:
            return self._close(f"too slow: behind for more than {limit:g} s", "behind")
        if self._bytes > self.policy.max_pending_bytes:
            return self._close(
                f"too slow: more than {self.policy.max_pending_bytes} bytes pending",
                "pending_bytes",
            )
        return None

    def _close(self, reason: str, cause: str) -> str:
        # The one place the state changes: pending messages are dropped with it.
        self.state = ClientState.CLOSING
        self.reason = reason
        self.cause = cause
        self._entries = []
        self._open.clear()
        self._bytes = 0
        return reason
