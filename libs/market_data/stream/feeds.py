"""Alpaca's two feeds: their URLs, and the routing of topics to the stock or crypto
connection (docs/architecture.md, "Feeds")."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Final

from libs.market_data.exceptions import MarketDataError
from libs.market_data.stream.connection import AlpacaConnection
from libs.market_data.stream.records import ConnectionStats
from libs.market_data.symbols import is_crypto
from libs.market_data.topics import parse_topic
from libs.tasks import cancel_and_wait

__all__ = ["ALPACA_STREAM_HOST", "Feeds", "crypto_feed_url", "feed_url"]

logger = logging.getLogger(__name__)

ALPACA_STREAM_HOST: Final = "wss://stream.data.alpaca.markets"
_V1BETA1_FEEDS: Final = frozenset({"boats", "overnight"})


def feed_url(feed: str, host: str = ALPACA_STREAM_HOST) -> str:
    """The stock stream URL of a feed (``iex``, ``sip``, ``delayed_sip``, ``test``, ...)."""
    version = "v1beta1" if feed in _V1BETA1_FEEDS else "v2"
    return f"{host}/{version}/{feed}"


def crypto_feed_url(feed: str = "us", host: str = ALPACA_STREAM_HOST) -> str:
    """The crypto stream URL of a location (``us``: Alpaca, ``us-1``, ``eu-1``: Kraken)."""
    return f"{host}/v1beta3/crypto/{feed}"


class Feeds:
    """The stock connection and the crypto one, and which topic goes to which.

    A topic of a crypto pair (``BTC/USD``, ``trades:BTC/USD``) goes to the crypto
    connection, every other one (``*`` included) to the stock connection. The crypto
    connection runs only once a pair is wanted while the stream runs: a service without
    crypto opens one socket, as before.
    """

    def __init__(
        self, stocks: AlpacaConnection, crypto: AlpacaConnection, first_wait: float = 10.0
    ) -> None:
        self.stocks = stocks
        self.crypto = crypto
        self._task: asyncio.Task[None] | None = None
        self._running = False
        # How long the subscribe that starts the crypto connection waits for it.
        self.first_wait = first_wait

    @staticmethod
    def split(topics: Iterable[str]) -> tuple[list[str], list[str]]:
        """``(stock topics, crypto topics)``, each in the given order."""
        stocks: list[str] = []
        crypto: list[str] = []
        for topic in topics:
            (crypto if is_crypto(parse_topic(topic)[1]) else stocks).append(topic)
        return stocks, crypto

    async def subscribe(self, topics: Iterable[str]) -> list[str]:
        """Add topics on their connections; returns those newly added."""
        stocks, crypto = self.split(topics)
        added = await self.stocks.subscribe(stocks) if stocks else []
        if crypto:
            added += await self.crypto.subscribe(crypto)
            if self._start_crypto():
                # The first pair opens the crypto socket: answer once it is established
                # (its subscription acknowledged), as for a stock symbol; bounded.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.first_wait):
                        await self.crypto.established.wait()
        return added

    async def unsubscribe(self, topics: Iterable[str]) -> list[str]:
        """Remove topics; returns those that were wanted."""
        stocks, crypto = self.split(topics)
        removed = await self.stocks.unsubscribe(stocks) if stocks else []
        if crypto:
            removed += await self.crypto.unsubscribe(crypto)
        return removed

    def topics(self) -> list[str]:
        """Every topic wanted on either connection, sorted."""
        return sorted([*self.stocks.desired, *self.crypto.desired])

    def running(self, running: bool) -> None:
        """The stream started (True) or ended (False); a wanted crypto feed starts with it."""
        self._running = running
        if running and self.crypto.desired:
            self._start_crypto()

    def _start_crypto(self) -> bool:
        """Start the crypto connection if the stream runs and it does not; True if started."""
        if not self._running or self._task is not None:
            return False
        self.crypto.reset()
        self._task = asyncio.create_task(self._run_crypto(), name="market-data-crypto")
        return True

    async def _run_crypto(self) -> None:
        try:
            await self.crypto.run()
        except MarketDataError as exc:
            # FAILED, with the reason in the stats; the stock feed goes on.
            logger.error("crypto stream stopped: %s", exc)

    async def stop_crypto(self, timeout: float) -> None:
        """Close the crypto socket cleanly and wait (bounded) for its loop to end."""
        task, self._task = self._task, None
        if task is None:
            return
        await self.crypto.stop()
        await asyncio.wait({task}, timeout=timeout)
        await cancel_and_wait(task)  # if it is still running

    def crypto_stats(self) -> ConnectionStats | None:
        """The crypto connection's counters, once it ran; ``None`` before."""
        crypto = self.crypto
        return crypto.stats() if self._task is not None or crypto.connections_opened else None
