"""Simulated open positions: their type and how they are read from mappings or a JSON file.

A crypto position is reported as Alpaca's trading API reports one: ``BTCUSD``, asset
class ``crypto``, exchange ``CRYPTO``, a fractional ``qty``; it is valued at the quotes
of its pair (``BTC/USD``), as the crypto feed names it. Either form may be given.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final

import msgspec

from apps.simulator.protocol import SYMBOL

__all__ = ["SimulatedPosition", "load_positions", "parse_decimal", "parse_positions"]

# Numbers in a positions file are read as exact decimals, never floats.
_file_decoder: Final = msgspec.json.Decoder(float_hook=Decimal)
# Alpaca's crypto quote currencies, longest first (BTCUSDT is BTC/USDT).
_QUOTE_CURRENCIES: Final = ("USDT", "USDC", "USD", "BTC")


def _pair(symbol: str) -> str | None:
    """``BTCUSD`` or ``BTC/USD`` -> ``BTC/USD``; ``None`` without a known quote currency."""
    if "/" in symbol:
        return symbol
    for currency in _QUOTE_CURRENCIES:
        if symbol.endswith(currency) and len(symbol) > len(currency):
            return f"{symbol[: -len(currency)]}/{currency}"
    return None


@dataclass(frozen=True, slots=True)
class SimulatedPosition:
    """A position the simulator reports; ``qty`` is signed (negative: short)."""

    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    asset_class: str = "us_equity"
    exchange: str = "NASDAQ"
    pair: str | None = None  # a crypto position's pair (BTC/USD): its quotes' symbol

    @property
    def quote_symbol(self) -> str:
        """The symbol its quotes stream under: the pair for crypto, else the ticker."""
        return self.pair or self.symbol


def parse_decimal(value: object, what: str) -> Decimal:
    """``value`` as an exact finite ``Decimal``; floats are refused, ``what`` names it in errors."""
    if isinstance(value, float | bool):
        raise ValueError(f"{what}: give {value!r} as a string or an integer, not a float")
    try:
        number = Decimal(value) if isinstance(value, Decimal | int) else Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{what}: {value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{what}: {value!r} is not a finite number")
    return number


def parse_positions(items: Iterable[Mapping[str, Any]]) -> list[SimulatedPosition]:
    """Positions from mappings with ``symbol``, ``qty``, ``avg_entry_price`` and optionally
    ``side`` (``long``/``short``), ``asset_class`` and ``exchange``. A pair (``BTC/USD``)
    or ``asset_class: crypto`` makes a crypto position, reported as ``BTCUSD``.

    A short may be given as a negative ``qty`` or as ``side: short`` with a positive one.
    Raises ``ValueError`` naming the bad entry.
    """
    positions: list[SimulatedPosition] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise ValueError(f"position #{index + 1}: expected an object, got {item!r}")
        symbol = str(item.get("symbol", "")).strip().upper()
        where = f"position #{index + 1} ({symbol or 'no symbol'})"
        if SYMBOL.fullmatch(symbol) is None:
            raise ValueError(f"{where}: 'symbol' must be a ticker")
        asset_class = str(item.get("asset_class", "crypto" if "/" in symbol else "us_equity"))
        pair = _pair(symbol) if asset_class == "crypto" else None
        if asset_class == "crypto":
            if pair is None:
                raise ValueError(f"{where}: a crypto symbol ends with one of {_QUOTE_CURRENCIES}")
            symbol = pair.replace("/", "")  # as the trading API names it
        if symbol in seen:
            raise ValueError(f"{where}: more than one position for {symbol}")
        seen.add(symbol)
        for name in ("qty", "avg_entry_price"):
            if name not in item:
                raise ValueError(f"{where}: '{name}' is missing")
        qty = parse_decimal(item["qty"], f"{where} qty")
        price = parse_decimal(item["avg_entry_price"], f"{where} avg_entry_price")
        if qty == 0:
            raise ValueError(f"{where}: qty is 0 (a closed position is left out)")
        if price < 0:
            raise ValueError(f"{where}: avg_entry_price is negative")
        side = str(item.get("side", "short" if qty < 0 else "long")).lower()
        if side not in ("long", "short"):
            raise ValueError(f"{where}: side must be 'long' or 'short', got {side!r}")
        if qty < 0 and side == "long":
            raise ValueError(f"{where}: negative qty with side 'long'")
        positions.append(
            SimulatedPosition(
                symbol=symbol,
                qty=-abs(qty) if side == "short" else qty,
                avg_entry_price=price,
                asset_class=asset_class,
                exchange=str(item.get("exchange", "CRYPTO" if pair else "NASDAQ")),
                pair=pair,
            )
        )
    return positions


def load_positions(path: str | Path) -> list[SimulatedPosition]:
    """Positions from a JSON file: an array of position objects, or ``{"positions": [...]}``.

    Raises ``ValueError`` naming the file and the problem.
    """
    try:
        data = _file_decoder.decode(Path(path).read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read positions file {path}: {exc.strerror or exc}") from exc
    except msgspec.DecodeError as exc:
        raise ValueError(f"positions file {path} is not JSON: {exc}") from exc
    if isinstance(data, dict):
        data = data.get("positions")
    if not isinstance(data, list):
        raise ValueError(f"positions file {path}: expected an array of positions")
    try:
        return parse_positions(data)
    except ValueError as exc:
        raise ValueError(f"positions file {path}: {exc}") from None
