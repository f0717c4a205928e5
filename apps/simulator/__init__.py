"""Alpaca-protocol simulator: a loopback WebSocket server speaking Alpaca's market-data stream."""

from apps.simulator.config import SimulatorConfig
from apps.simulator.server import AlpacaSimulator

__all__ = ["AlpacaSimulator", "SimulatorConfig"]
