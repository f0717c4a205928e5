"""The ``market-data`` command: run the service, the simulator, the demo; steer a service."""

# Imports inside the handlers are deliberate: the client commands and the configuration
# error of ``serve`` answer without loading uvicorn, FastAPI or the simulator.

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from apps.market_data_service.config import SettingsError, load_settings
from apps.market_data_service.observability.logs import (
    LogFormat,
    configure_logging,
    env_log_format,
    settings_secrets,
)

__all__ = ["main"]

DEFAULT_API = "http://127.0.0.1:8004"


def _configure_logging(
    level: str, log_format: LogFormat | None = None, secrets: Sequence[str] = ()
) -> None:
    # Commands without settings (sim, demo) still honour LOG_FORMAT.
    configure_logging(level, log_format or env_log_format(), secrets=secrets)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from apps.market_data_service.main import create_app

    overrides: dict[str, object] = {}
    if args.host:
        overrides["service_host"] = args.host
    if args.port:
        overrides["port"] = args.port
    try:
        settings = load_settings(**overrides)
    except SettingsError as exc:
        print(f"market-data: {exc}", file=sys.stderr)
        print(
            "Set them in the environment or a .env file (see README, Configuration). "
            "To try the service without Alpaca keys, run `make demo`.",
            file=sys.stderr,
        )
        return 2
    _configure_logging(settings.log_level, settings.log_format, settings_secrets(settings))
    # uvicorn shuts down gracefully on SIGTERM, then re-raises the signal to whatever
    # handler was there before it. A no-op handler makes a completed graceful shutdown
    # exit 0, as orchestrators expect, instead of dying by the signal afterwards.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    uvicorn.run(
        create_app(settings),
        host=settings.service_host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        # uvicorn's own loggers propagate to ours: one format on every line.
        log_config=None,
    )
    return 0


def _sim(args: argparse.Namespace) -> int:
    from apps.simulator import cli as sim_cli

    _configure_logging(args.log_level)
    return sim_cli.run(args)


def _demo(args: argparse.Namespace) -> int:
    from apps.market_data_service.cli import demo

    _configure_logging(args.log_level)
    return demo.run(args)


def _status(args: argparse.Namespace) -> int:
    from apps.market_data_service.cli import status

    return status.run(args.api)


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from apps.bench import BenchOptions, run_bench

    logging.basicConfig(level=logging.WARNING)
    return run_bench(
        BenchOptions(
            duration=args.duration,
            memory_duration=args.memory_duration,
            output=Path(args.output),
            only=tuple(args.only or ()),
        )
    )


def _api_key_headers() -> dict[str, str]:
    """``X-API-Key`` from MARKET_DATA_API_KEY (or its _FILE), for a service that needs it."""
    key = os.environ.get("MARKET_DATA_API_KEY", "").strip()
    key_file = os.environ.get("MARKET_DATA_API_KEY_FILE")
    if not key and key_file:
        try:
            key = Path(key_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            key = ""  # the service answers 401, which says what is missing
    return {"X-API-Key": key} if key else {}


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> int:
    try:
        response = httpx.request(
            method,
            args.api.rstrip("/") + path,
            json=body,
            headers=_api_key_headers(),
            timeout=15.0,
        )
    except httpx.HTTPError as exc:
        print(f"market-data: cannot reach the service at {args.api}: {exc}", file=sys.stderr)
        return 1
    try:
        shown: Any = response.json()
    except ValueError:
        shown = response.text
    print(json.dumps(shown, indent=2) if not isinstance(shown, str) else shown)
    return 0 if response.is_success else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="market-data", description="Real-time market data service (Alpaca -> Redis)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the service against the configured feed")
    serve.add_argument("--host", help="bind address (default SERVICE_HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default PORT, 8004)")
    serve.set_defaults(handler=_serve)

    sim = commands.add_parser("sim", help="run the Alpaca-protocol simulator")
    from apps.simulator import cli as sim_cli

    sim_cli.add_arguments(sim)
    sim.add_argument("--log-level", default="INFO")
    sim.set_defaults(handler=_sim)

    demo = commands.add_parser(
        "demo", help="simulator + private Redis + service, live prices (no keys needed)"
    )
    demo.add_argument("--port", type=int, default=8004, help="service port (default 8004)")
    demo.add_argument("--rate", type=float, default=20.0, help="simulated quotes/s in total")
    demo.add_argument(
        "--symbols", nargs="+", default=["AAPL", "MSFT", "GOOGL"], help="symbols to subscribe"
    )
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument("--log-level", default="WARNING")
    demo.set_defaults(handler=_demo)

    bench = commands.add_parser("bench", help="measure throughput, CPU and latency")
    bench.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    bench.add_argument("--memory-duration", type=float, default=60.0, help="memory run seconds")
    bench.add_argument("--output", default="bench-results.json", help="JSON file of figures")
    bench.add_argument("--only", nargs="+", help="run only these scenarios")
    bench.set_defaults(handler=_bench)

    for name, help_text in (
        ("health", "show the service's health"),
        ("subscriptions", "list the subscribed symbols"),
    ):
        sub = commands.add_parser(name, help=help_text)
        sub.add_argument("--api", default=DEFAULT_API, help=f"service URL (default {DEFAULT_API})")
        sub.set_defaults(
            handler=lambda a, p="/health" if name == "health" else "/api/v1/subscriptions": _call(
                a, "GET", p
            )
        )

    sub = commands.add_parser("subscribe", help="subscribe to symbols")
    sub.add_argument("symbols", nargs="+")
    sub.add_argument("--api", default=DEFAULT_API)
    sub.set_defaults(
        handler=lambda a: _call(a, "POST", "/api/v1/subscribe", {"symbols": a.symbols})
    )

    unsub = commands.add_parser("unsubscribe", help="unsubscribe from a symbol")
    unsub.add_argument("symbol")
    unsub.add_argument("--api", default=DEFAULT_API)
    unsub.set_defaults(handler=lambda a: _call(a, "DELETE", f"/api/v1/subscribe/{a.symbol}"))

    status = commands.add_parser(
        "status", help="tables of the service's health, subscriptions and real-time P&L"
    )
    status.add_argument("--api", default=DEFAULT_API, help=f"service URL (default {DEFAULT_API})")
    status.set_defaults(handler=_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    return result
