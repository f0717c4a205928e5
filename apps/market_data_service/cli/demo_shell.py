"""What every ``market-data demo`` variant shares around its own work.

The symbols from the command line (a bad one: exit 2 with the reason), a stop event
that SIGINT and SIGTERM set (so everything started is stopped in order, not torn
down by a KeyboardInterrupt mid-way), and running the demo's coroutine with Ctrl-C
before the handlers are in place as exit 130.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from libs.market_data import InvalidSymbolError, normalize_symbols

__all__ = ["demo_symbols", "run_demo", "stop_on_signals"]


def run_demo(
    main: Callable[[argparse.Namespace], Coroutine[Any, Any, int]], args: argparse.Namespace
) -> int:
    """``main(args)`` on a fresh event loop; its exit code, 130 on Ctrl-C."""
    try:
        return asyncio.run(main(args))
    except KeyboardInterrupt:
        return 130


def demo_symbols(args: argparse.Namespace) -> list[str] | None:
    """``--symbols`` normalised; None (the reason printed) when one is no symbol."""
    try:
        return normalize_symbols(args.symbols)
    except InvalidSymbolError as exc:
        print(f"market-data: {exc}", file=sys.stderr)
        return None


def stop_on_signals() -> asyncio.Event:
    """An event SIGINT and SIGTERM set, on the running loop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop
