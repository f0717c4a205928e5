"""The board of ``market-data watch``: what it shows, as a pure model fed by messages.

No terminal and no I/O here. The feeds (:mod:`~apps.market_data_service.cli.watch_feeds`)
turn WebSocket frames or :class:`~libs.market_data.PriceSubscriber` updates into the
:data:`BoardMessage` records below; :meth:`Board.apply` is the one place the board
changes; :meth:`Board.rows` and :meth:`Board.status` are what a view renders at a given
moment. Prices stay exact ``Decimal`` from the wire text (docs/architecture.md,
"Sequence numbers" for ``seq`` and ``epoch``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final, Literal

from libs.telemetry import epoch_seconds

__all__ = [
    "Board",
    "BoardEvent",
    "BoardMessage",
    "BoardStatus",
    "CoalescedMessage",
    "EventKind",
    "LinkMessage",
    "LinkState",
    "NoticeMessage",
    "PriceMessage",
    "Quote",
    "ResyncMessage",
    "RowView",
]

LinkState = Literal["connecting", "connected", "reconnecting", "closed"]
EventKind = Literal["gap", "link", "error", "info"]

HIGHLIGHT_SECONDS: Final = 1.5  # a changed cell stays highlighted this long
MAX_EVENTS: Final = 8  # recent events kept for the panel
_FIELDS: Final = ("bid", "ask", "mid", "spread")
_Note = Callable[[EventKind, str], None]  # apply's ``note``: add an event to the panel


@dataclass(frozen=True, slots=True)
class Quote:
    """A price as a feed received it (a snapshot or an update)."""

    symbol: str
    bid: Decimal
    ask: Decimal
    mid: Decimal
    # Exact, like the prices: whole for a stock, fractional for a crypto pair (BTC/USD).
    bid_size: Decimal = Decimal(0)
    ask_size: Decimal = Decimal(0)
    timestamp: str = ""
    seq: int = 0
    epoch: str = ""

    @property
    def spread(self) -> Decimal:
        return self.ask - self.bid


@dataclass(frozen=True, slots=True)
class PriceMessage:
    """A price: ``snapshot`` when it was read from the cache, else a live update."""

    quote: Quote
    snapshot: bool = False


@dataclass(frozen=True, slots=True)
class ResyncMessage:
    """The feed lost track of ``symbols`` (a gap) and re-reads them; ``reason`` says why."""

    symbols: tuple[str, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class CoalescedMessage:
    """The service replaced ``replaced`` older updates of ``symbols`` with newer ones while
    this client was behind (latest-value; docs/streaming.md, "Slow clients"). The seq
    jump of each symbol's next update is those replaced updates, not a gap."""

    replaced: int
    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LinkMessage:
    """The feed's connection changed state; ``detail`` is the address or the cause."""

    state: LinkState
    detail: str = ""


@dataclass(frozen=True, slots=True)
class NoticeMessage:
    """Anything else worth a line: an ``error`` message of the server, an unknown type."""

    text: str
    error: bool = False


BoardMessage = PriceMessage | ResyncMessage | CoalescedMessage | LinkMessage | NoticeMessage


@dataclass(frozen=True, slots=True)
class BoardEvent:
    """One line of the recent-events panel."""

    at: float
    kind: EventKind
    text: str


@dataclass(frozen=True, slots=True)
class RowView:
    """One symbol's row at a moment: values, age, and the cells that just changed.

    ``changes`` maps a field (``bid``, ``ask``, ``mid``, ``spread``) to +1 (up) or -1
    (down) while its highlight lasts.
    """

    symbol: str
    quote: Quote | None
    age: float | None
    changes: dict[str, int]
    updates: int


@dataclass(frozen=True, slots=True)
class BoardStatus:
    """The status line: the link and the counters."""

    state: LinkState
    detail: str
    updates: int
    snapshots: int
    resyncs: int
    reconnects: int
    skipped: int
    coalesced: int = 0


@dataclass(slots=True)
class _Row:
    quote: Quote | None = None
    changes: dict[str, int] = field(default_factory=dict)
    changed_at: float = 0.0
    updates: int = 0


class Board:
    """The symbols watched, their newest quotes, the link, and the recent events."""

    def __init__(
        self,
        symbols: list[str] | tuple[str, ...],
        *,
        highlight_seconds: float = HIGHLIGHT_SECONDS,
        max_events: int = MAX_EVENTS,
    ) -> None:
        self._rows: dict[str, _Row] = {symbol: _Row() for symbol in symbols}
        self._highlight = highlight_seconds
        self._events: deque[BoardEvent] = deque(maxlen=max_events)
        self._state: LinkState = "connecting"
        self._detail = ""
        self._connected_once = False
        self.updates = 0
        self.snapshots = 0
        self.resyncs = 0
        self.reconnects = 0
        self.skipped = 0  # updates a seq jump says were never seen
        self.coalesced = 0  # updates the service replaced by newer ones (not a gap)
        self.duplicates = 0
        # Symbols named by a ``coalesced`` message whose next update has not come yet.
        self._replaced: set[str] = set()

    # -- reading ----------------------------------------------------------------------------

    @property
    def symbols(self) -> tuple[str, ...]:
        return tuple(self._rows)

    @property
    def events(self) -> tuple[BoardEvent, ...]:
        return tuple(self._events)

    def quote(self, symbol: str) -> Quote | None:
        row = self._rows.get(symbol)
        return None if row is None else row.quote

    def status(self) -> BoardStatus:
        return BoardStatus(
            self._state, self._detail, self.updates, self.snapshots, self.resyncs,
            self.reconnects, self.skipped, self.coalesced,
        )  # fmt: skip

    def rows(self, now: float) -> list[RowView]:
        """Every watched symbol, in the order given, as of ``now`` (epoch seconds)."""
        views = []
        for symbol, row in self._rows.items():
            quote = row.quote
            age = None
            if quote is not None and quote.timestamp:
                try:
                    age = max(0.0, now - epoch_seconds(quote.timestamp))
                except ValueError:
                    age = None
            fresh = now - row.changed_at < self._highlight
            views.append(
                RowView(symbol, quote, age, dict(row.changes) if fresh else {}, row.updates)
            )
        return views

    # -- the one place the board changes ------------------------------------------------------

    def apply(self, message: BoardMessage, now: float) -> list[BoardEvent]:
        """Take one message in; the events it added to the panel (to print them, say)."""
        added: list[BoardEvent] = []

        def note(kind: EventKind, text: str) -> None:
            event = BoardEvent(now, kind, text)
            self._events.append(event)
            added.append(event)

        match message:
            case PriceMessage(quote=quote, snapshot=snapshot):
                self._price(quote, snapshot, now, note)
            case ResyncMessage(symbols=symbols, reason=reason):
                self.resyncs += 1
                shown = ", ".join(symbols[:6]) + (" ..." if len(symbols) > 6 else "")
                note("gap", f"resync {shown or '(all)'}: {reason}")
            case CoalescedMessage(replaced=replaced, symbols=symbols):
                self._replaced.update(symbols)
                shown = ", ".join(symbols[:6]) + (" ..." if len(symbols) > 6 else "")
                note("info", f"behind: {replaced} older updates replaced ({shown})")
            case LinkMessage(state=state, detail=detail):
                if state == "connected" and self._connected_once and self._state != "connected":
                    self.reconnects += 1
                    note("link", f"reconnected: {detail}")
                elif state == "connected" and not self._connected_once:
                    note("link", f"connected: {detail}")
                elif state == "reconnecting" and self._state != "reconnecting":
                    note("link", f"connection lost: {detail}")
                elif state == "closed":
                    note("link", f"closed: {detail}")
                self._connected_once = self._connected_once or state == "connected"
                self._state, self._detail = state, detail
            case NoticeMessage(text=text, error=error):
                note("error" if error else "info", text)
        return added

    def _price(self, quote: Quote, snapshot: bool, now: float, note: _Note) -> None:
        row = self._rows.get(quote.symbol)
        if row is None:
            return  # a symbol this board does not watch
        old = row.quote
        same_epoch = old is not None and bool(quote.epoch) and quote.epoch == old.epoch
        if old is not None and same_epoch and quote.seq <= old.seq:
            # Never go back within an epoch: a repeat, or a snapshot older than an update.
            if not snapshot:
                self.duplicates += 1
            return
        replaced = quote.symbol in self._replaced
        self._replaced.discard(quote.symbol)  # only its next update follows the replacing
        if snapshot:
            self.snapshots += 1
        else:
            self.updates += 1
            row.updates += 1
            if old is not None and same_epoch and quote.seq > old.seq + 1:
                missed = quote.seq - old.seq - 1
                if replaced:
                    self.coalesced += missed  # told by the service: not a gap
                else:
                    self.skipped += missed
                    note("gap", f"{quote.symbol}: seq {old.seq} -> {quote.seq}, {missed} not seen")
            elif old is not None and quote.epoch and old.epoch and quote.epoch != old.epoch:
                note("gap", f"{quote.symbol}: new epoch {quote.epoch} (the service restarted)")
        if old is not None:
            changes = {
                name: 1 if new > before else -1
                for name in _FIELDS
                if (new := getattr(quote, name)) != (before := getattr(old, name))
            }
            if changes:
                row.changes, row.changed_at = changes, now
        row.quote = quote
