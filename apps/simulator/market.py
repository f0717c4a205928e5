"""The simulator's market beyond stock quotes: a large universe, trades, bars, crypto.

Pure: no I/O. A session whose subscriptions need more than stock quotes builds a
:class:`SessionMarket`; each generated frame then carries the quotes of the
quote-subscribed symbols, a trade per tick of a trade-subscribed symbol (at the bid or
the ask), and, after each minute mark, the previous minute's bar of every bar-subscribed
symbol that traded in it (open, high, low, close, volume, VWAP, count from those trades).
Crypto sessions send fractional sizes and no exchange, condition or tape fields, as
Alpaca's crypto feed does (docs/concepts/websocket-streaming.md).
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from apps.simulator.quotes import DEFAULT_UNIVERSE, QuoteTick, format_price, rfc3339_ns

__all__ = ["CRYPTO_UNIVERSE", "SessionMarket", "build_universe"]

# What "*" streams on the crypto path.
CRYPTO_UNIVERSE: Final[tuple[str, ...]] = ("BTC/USD", "ETH/USD", "SOL/USD", "DOGE/USD")
_WILDCARD: Final = "*"
_NS_PER_MIN: Final = 60_000_000_000
# Fractional sizes: the tick's lot count times a per-symbol factor, in 1e-5 units.
_CRYPTO_SIZE_SCALE: Final = Decimal("0.00001")
# A weighted walk order for a skewed universe repeats symbols this many times in all.
_SEQUENCE_LENGTH: Final = 200_000


def build_universe(size: int, skew: float = 0.0, seed: int | None = None) -> tuple[str, ...]:
    """The symbols ``*`` walks: the default ten, then ``S0001``... up to ``size`` in all.

    ``skew`` > 0 makes the walk order Zipf-like, as a real tape is (a few names trade
    most): symbol ``k`` (1-based) comes up in proportion to ``1 / k**skew``. The result
    is then a walk order with repeats, not a list of distinct symbols.
    """
    names = list(DEFAULT_UNIVERSE[: max(size, 0)] if size else DEFAULT_UNIVERSE)
    names += [f"S{i:04d}" for i in range(len(names), size)]
    if skew <= 0:
        return tuple(names)
    weights = [1.0 / (rank**skew) for rank in range(1, len(names) + 1)]
    rng = random.Random(seed)
    # Every symbol at least once, the rest drawn by weight, in a shuffled order.
    order = names + rng.choices(names, weights, k=max(0, _SEQUENCE_LENGTH - len(names)))
    rng.shuffle(order)
    return tuple(order)


@dataclass(slots=True)
class _Minute:
    """One symbol's trades in the current minute, as a bar in the making."""

    start_ns: int
    open: int
    high: int
    low: int
    close: int
    volume: int = 0
    notional: int = 0  # sum of price (cents) x size
    count: int = 0


@dataclass(slots=True)
class SessionMarket:
    """What one session streams beyond stock quotes; see the module docstring."""

    quotes: frozenset[str]
    trades: frozenset[str]
    bars: frozenset[str]
    crypto: bool
    symbols: tuple[str, ...]  # the walk: every symbol of any channel
    _trade_id: int = 0
    _minutes: dict[str, _Minute] = field(default_factory=dict)

    @classmethod
    def of(
        cls, subscriptions: Mapping[str, Iterable[str]], universe: tuple[str, ...], *, crypto: bool
    ) -> SessionMarket:
        wanted = {ch: set(subscriptions.get(ch, ())) for ch in ("quotes", "trades", "bars")}
        everything = CRYPTO_UNIVERSE if crypto else universe
        walk: dict[str, None] = {}
        for symbols in wanted.values():
            if _WILDCARD in symbols:
                walk.update(dict.fromkeys(everything))
            walk.update((s, None) for s in symbols if s != _WILDCARD)

        def expand(symbols: set[str]) -> frozenset[str]:
            return frozenset(everything) | symbols if _WILDCARD in symbols else frozenset(symbols)

        return cls(
            expand(wanted["quotes"]),
            expand(wanted["trades"]),
            expand(wanted["bars"]),
            crypto,
            tuple(walk),
        )

    def frame(self, ticks: Iterable[QuoteTick], ns: int) -> list[dict[str, Any]]:
        """The messages of one frame for these ticks (stamped ``ns + i``)."""
        out: list[dict[str, Any]] = []
        for i, tick in enumerate(ticks):
            stamp = ns + i
            out.extend(self._bars_due(tick.symbol, stamp))
            if tick.symbol in self.quotes:
                out.append(self._quote(tick, stamp))
            if tick.symbol in self.trades or tick.symbol in self.bars:
                self._trade(tick, stamp, out)
        return out

    def _quote(self, tick: QuoteTick, ns: int) -> dict[str, Any]:
        bid, ask = Decimal(format_price(tick.bid_cents)), Decimal(format_price(tick.ask_cents))
        if self.crypto:
            return {
                "T": "q", "S": tick.symbol, "bp": bid, "bs": self._size(tick, tick.bid_size),
                "ap": ask, "as": self._size(tick, tick.ask_size), "t": rfc3339_ns(ns),
            }  # fmt: skip
        return {
            "T": "q", "S": tick.symbol, "bx": tick.bid_exchange, "bp": bid, "bs": tick.bid_size,
            "ax": tick.ask_exchange, "ap": ask, "as": tick.ask_size, "c": ["R"], "z": tick.tape,
            "t": rfc3339_ns(ns),
        }  # fmt: skip

    @staticmethod
    def _size(tick: QuoteTick, lots: int) -> Decimal:
        # 0.01 to 0.9 of a coin or so; exact 5-decimal values.
        return (lots * (len(tick.symbol) * 1237 + tick.bid_cents % 97)) * _CRYPTO_SIZE_SCALE

    def _trade(self, tick: QuoteTick, ns: int, out: list[dict[str, Any]]) -> None:
        self._trade_id += 1
        # Alternate between the bid and the ask, as buyers and sellers take liquidity.
        at_ask = self._trade_id % 2 == 0
        cents = tick.ask_cents if at_ask else tick.bid_cents
        lots = tick.ask_size if at_ask else tick.bid_size
        symbol = tick.symbol
        if symbol in self.trades:
            trade: dict[str, Any] = {"T": "t", "S": symbol, "i": self._trade_id}
            if self.crypto:
                trade.update(p=Decimal(format_price(cents)), s=self._size(tick, lots),
                             tks="B" if at_ask else "S")  # fmt: skip
            else:
                trade.update(x=tick.ask_exchange if at_ask else tick.bid_exchange,
                             p=Decimal(format_price(cents)), s=lots * 100, c=["@"],
                             z=tick.tape)  # fmt: skip
            trade["t"] = rfc3339_ns(ns)
            out.append(trade)
        if symbol in self.bars:
            self._aggregate(symbol, cents, lots * 100, ns)

    def _aggregate(self, symbol: str, cents: int, size: int, ns: int) -> None:
        start = ns - ns % _NS_PER_MIN
        minute = self._minutes.get(symbol)
        if minute is None or minute.start_ns != start:
            minute = self._minutes[symbol] = _Minute(start, cents, cents, cents, cents)
        minute.high = max(minute.high, cents)
        minute.low = min(minute.low, cents)
        minute.close = cents
        minute.volume += size
        minute.notional += cents * size
        minute.count += 1

    def _bars_due(self, symbol: str, ns: int) -> list[dict[str, Any]]:
        minute = self._minutes.get(symbol)
        if minute is None or ns - minute.start_ns < _NS_PER_MIN:
            return []
        del self._minutes[symbol]
        vwap = Decimal(minute.notional) / Decimal(minute.volume * 100) if minute.volume else None
        bar: dict[str, Any] = {
            "T": "b", "S": symbol,
            "o": Decimal(format_price(minute.open)), "h": Decimal(format_price(minute.high)),
            "l": Decimal(format_price(minute.low)), "c": Decimal(format_price(minute.close)),
            "v": minute.volume if not self.crypto else Decimal(minute.volume) / 1000,
            "t": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(minute.start_ns // 10**9)),
            "n": minute.count,
        }  # fmt: skip
        if vwap is not None:
            bar["vw"] = vwap.quantize(Decimal("0.000001"))
        return [bar]
