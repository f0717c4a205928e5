"""The ``market-data`` command: serve, client commands, demo, simulator, bench."""

from apps.market_data_service.cli.commands import main

__all__ = ["main"]
