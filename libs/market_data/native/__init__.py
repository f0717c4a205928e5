"""The native hot path (docs/architecture.md, "Native quote path"): the stock feed's
plain quote frames decoded, validated and encoded in C (``_quotes.c``), and a frame's
Redis commands packed in C (``_packing.c``).

:data:`scan` and :data:`pack` are None when their module is not built (no C compiler at
``make setup``) or when ``MARKET_DATA_NATIVE=0`` turns them off; the Python path then does
the same work with the same results. ``scan`` hands back ``None`` for any frame outside
its common case, so the Python path stays the reference for everything else.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Final

from libs.market_data.types import MAX_PRICE

__all__ = ["MAX_PRICE_UNITS", "QuoteBlock", "available", "pack", "path", "scan", "use"]

try:
    from libs.market_data.native._quotes import QuoteBlock
    from libs.market_data.native._quotes import scan as _scan
except ImportError:  # not built: the Python path runs
    _scan = None  # type: ignore[assignment]
    QuoteBlock = None  # type: ignore[assignment,misc]
try:
    from libs.market_data.native._packing import pack as _pack
except ImportError:
    _pack = None  # type: ignore[assignment]

_ON = os.environ.get("MARKET_DATA_NATIVE", "1") != "0"

# The price cap as a whole number of units: the C checks compare integer parts.
MAX_PRICE_UNITS: Final = int(MAX_PRICE)
if MAX_PRICE_UNITS != MAX_PRICE:
    raise RuntimeError("the native path needs a whole-number MAX_PRICE")

scan: Callable[[bytes, int], QuoteBlock | None] | None = _scan if _ON else None
pack: Callable[..., tuple[bytes, bytes, list[tuple[str, bytes, bytes]]]] | None = (
    _pack if _ON else None
)


def available() -> bool:
    """True when frames take the native path in this process (both modules)."""
    return scan is not None and pack is not None


def use(enabled: bool) -> None:
    """Turn the native path on (when built) or off for this process (the service's
    ``MARKET_DATA_NATIVE`` setting); frames already parsed keep the path they took."""
    # The readers look these attributes up once per frame: the switch rebinds them.
    global _ON, scan, pack  # noqa: PLW0603
    _ON = enabled
    scan = _scan if enabled else None
    pack = _pack if enabled else None


def path() -> str:
    """Which quote path this process runs, for ``/health`` and the logs."""
    if available():
        return "native"
    return "python (MARKET_DATA_NATIVE=0)" if not _ON else "python (not built: make setup)"
