"""The ``market-data`` command: run the service, the simulator, the demo; steer a service."""

# Imports inside the handlers are deliberate: the client commands and the configuration
# error of ``serve`` answer without loading uvicorn, FastAPI or the simulator.

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence

from apps.market_data_service.cli.client import (
    EXIT_CODES_HELP,
    CommandError,
    api_url,
    resolve_api_key,
)
from apps.market_data_service.cli.tables import LIST_LIMIT
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
    from apps.market_data_service.cli import demo, demo_instances

    _configure_logging(args.log_level)
    if args.instances > 1:
        return demo_instances.run(args)
    return demo.run(args)


def _status(args: argparse.Namespace) -> int:
    from apps.market_data_service.cli import status

    return status.run(args.api, resolve_api_key(args.api_key), show_all=args.all)


def _watch(args: argparse.Namespace) -> int:
    from apps.market_data_service.cli import watch

    return watch.run(args)


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


def _remote(name: str) -> Callable[[argparse.Namespace], int]:
    """The handler ``name`` of :mod:`apps.market_data_service.cli.remote`, imported on use."""

    def handler(args: argparse.Namespace) -> int:
        from apps.market_data_service.cli import remote

        command: Callable[[argparse.Namespace], int] = getattr(remote, name)
        return command(args)

    return handler


def _api_argument(value: str) -> str:
    try:
        return api_url(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an http:// or https:// URL (e.g. {DEFAULT_API})"
        ) from None


def _client_options() -> argparse.ArgumentParser:
    """--api and --api-key, shared by the commands that talk to a running service."""
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument(
        "--api",
        type=_api_argument,
        default=DEFAULT_API,
        help=f"service URL (default {DEFAULT_API})",
    )
    options.add_argument(
        "--api-key",
        metavar="KEY",
        help="the service's API key (default: MARKET_DATA_API_KEY or MARKET_DATA_API_KEY_FILE "
        "from the environment or ./.env, as the service reads them); a key given here is "
        "visible in the process list, prefer those. Never printed",
    )
    return options


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="market-data",
        description="Real-time market data service (Alpaca -> Redis).",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        "--symbols",
        nargs="+",
        default=["AAPL", "MSFT", "GOOGL"],
        help="symbols to subscribe; the demo account holds a position in each",
    )
    demo.add_argument(
        "--channels",
        nargs="+",
        choices=["quotes", "trades", "bars"],
        default=["quotes"],
        help="what to keep per symbol (quotes, trades, bars); crypto pairs such as BTC/USD work",
    )
    demo.add_argument("--duration", type=float, help="stop after this many seconds")
    demo.add_argument(
        "--cluster", action="store_true", help="on a private 3-primary Redis Cluster (Redis 7+)"
    )
    demo.add_argument(
        "--instances",
        type=int,
        default=1,
        help="2+: that many instances with leader election, the leader killed every "
        "--kill-every seconds (docs/leadership.md)",
    )
    demo.add_argument("--kill-every", type=float, default=15.0, help="with --instances")
    demo.add_argument("--log-level", default="WARNING")
    demo.set_defaults(handler=_demo)

    bench = commands.add_parser("bench", help="measure throughput, CPU and latency")
    bench.add_argument("--duration", type=float, default=10.0, help="seconds per scenario")
    bench.add_argument("--memory-duration", type=float, default=60.0, help="memory run seconds")
    bench.add_argument("--output", default="bench-results.json", help="JSON file of figures")
    bench.add_argument("--only", nargs="+", help="run only these scenarios")
    bench.set_defaults(handler=_bench)

    client = _client_options()

    def client_command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=help_text,
            description=help_text[0].upper() + help_text[1:] + ".",
            parents=[client],
            epilog=EXIT_CODES_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    json_help = "print the service's JSON answer instead"
    health = client_command("health", "show the service's health")
    health.add_argument("--json", action="store_true", help=json_help)
    health.set_defaults(handler=_remote("health"))

    listing = client_command("subscriptions", "list the subscribed symbols and their sources")
    listing.add_argument("--json", action="store_true", help=json_help)
    listing.set_defaults(handler=_remote("subscriptions"))

    channels = "comma-separated: quotes, trades, bars (default: quotes; unsubscribe: all)"
    sub = client_command(
        "subscribe", 'subscribe to tickers, crypto pairs (BTC/USD) or "*" (the whole market)'
    )
    sub.add_argument("symbols", nargs="+", metavar="SYMBOL")
    unsub = client_command("unsubscribe", 'unsubscribe from a symbol, a crypto pair or "*"')
    unsub.add_argument("symbol", metavar="SYMBOL")
    for command in (sub, unsub):
        command.add_argument("--channels", action="append", metavar="LIST", help=channels)
        command.add_argument("--json", action="store_true", help=json_help)
    sub.set_defaults(handler=_remote("subscribe"))
    unsub.set_defaults(handler=_remote("unsubscribe"))

    status = client_command(
        "status", "tables of the service's health, subscriptions and real-time P&L"
    )
    status.add_argument(
        "--all",
        action="store_true",
        help=f"list every subscription (above {LIST_LIMIT} they are summarised)",
    )
    status.set_defaults(handler=_status)

    watch = client_command(
        "watch", "a live table of prices from the service's stream (--api) or Redis (--redis)"
    )
    watch.add_argument("symbols", nargs="+", metavar="SYMBOL")
    watch.add_argument(
        "--redis", metavar="URL", help="read Redis directly (PriceSubscriber) instead of --api"
    )
    watch.add_argument(
        "--namespace",
        default=os.environ.get("REDIS_NAMESPACE", ""),
        help="with --redis: the service's REDIS_NAMESPACE (default: from the environment)",
    )
    watch.add_argument(
        "--plain",
        action="store_true",
        help="one line per message, then the table (the default when output is not a terminal)",
    )
    watch.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    watch.add_argument("--count", type=int, metavar="N", help="stop after N live updates")
    watch.set_defaults(handler=_watch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.handler(args)
    except CommandError as exc:  # one line, never a traceback
        print(f"market-data: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    return result
