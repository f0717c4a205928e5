"""Command-line entry of the simulator; ``market-data sim`` wires these two functions in."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from dataclasses import asdict

from apps.simulator.config import DEFAULT_PORT, SimulatorConfig
from apps.simulator.positions import load_positions
from apps.simulator.server import AlpacaSimulator

__all__ = ["add_arguments", "config_from_args", "run"]

logger = logging.getLogger(__name__)


def _optional_limit(text: str) -> int | None:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 = unlimited), got {value}")
    return value or None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser``; defaults are :class:`SimulatorConfig`'s."""
    defaults = SimulatorConfig()
    parser.add_argument("--host", default=defaults.host, help="interface to bind (%(default)s)")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port to listen on; 0 picks a free one (%(default)s)",
    )
    parser.add_argument("--api-key", default=defaults.api_key, help="accepted key (%(default)s)")
    parser.add_argument(
        "--secret-key", default=defaults.secret_key, help="accepted secret (%(default)s)"
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=defaults.rate,
        help="quotes per second per session over its symbols; 0 = none (%(default)s)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=defaults.batch_size,
        help="most quotes in one frame (%(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=defaults.seed, help="seed for reproducible quotes"
    )
    parser.add_argument(
        "--connection-limit",
        type=_optional_limit,
        default=defaults.connection_limit,
        help="authenticated sessions at once, 0 = unlimited (%(default)s)",
    )
    parser.add_argument(
        "--connection-release-delay",
        type=float,
        default=defaults.connection_release_delay,
        metavar="SECONDS",
        help="how long a socket that died without closing keeps its slot (%(default)s)",
    )
    parser.add_argument(
        "--symbol-limit",
        type=_optional_limit,
        default=defaults.symbol_limit or 0,
        help="symbols per session, 0 = unlimited (unlimited)",
    )
    parser.add_argument(
        "--auth-timeout",
        type=float,
        default=defaults.auth_timeout,
        help="seconds a client has to authenticate (%(default)s)",
    )
    parser.add_argument(
        "--no-compression",
        dest="compression",
        action="store_false",
        help="decline permessage-deflate",
    )
    parser.add_argument(
        "--positions",
        metavar="FILE",
        help="JSON file of open positions for GET /v2/positions "
        '(e.g. [{"symbol": "AAPL", "qty": "10", "avg_entry_price": "187.50"}])',
    )


def config_from_args(args: argparse.Namespace) -> SimulatorConfig:
    """The :class:`SimulatorConfig` described by parsed :func:`add_arguments` options."""
    return SimulatorConfig(
        host=args.host,
        port=args.port,
        api_key=args.api_key,
        secret_key=args.secret_key,
        rate=args.rate,
        batch_size=args.batch_size,
        seed=args.seed,
        connection_limit=args.connection_limit or None,
        connection_release_delay=args.connection_release_delay,
        symbol_limit=args.symbol_limit or None,
        auth_timeout=args.auth_timeout,
        compression=args.compression,
        positions=tuple(
            asdict(p) for p in (load_positions(args.positions) if args.positions else ())
        ),
    )


async def _serve(config: SimulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not available on every platform (Windows); Ctrl-C then ends via KeyboardInterrupt.
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        async with AlpacaSimulator(config) as sim:
            logger.info(
                "Simulator ready: %s (keys %s / %s, %g quotes/s per session); Ctrl-C stops",
                sim.url(),
                config.api_key,
                config.secret_key,
                config.rate,
            )
            await stop.wait()
            logger.info("Stopping the simulator")
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    """Run the simulator until Ctrl-C or SIGTERM; returns the process exit code."""
    if not logging.getLogger().handlers:
        # Run standalone: make the URL line visible. A host CLI's own setup wins.
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = config_from_args(args)
    except ValueError as exc:
        logger.error("Invalid simulator settings: %s", exc)
        return 2
    try:
        asyncio.run(_serve(config))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        logger.error("Cannot listen on %s:%s: %s", config.host, config.port, exc)
        return 1
    return 0
