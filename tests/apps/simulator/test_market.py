"""The simulator's market beyond stock quotes: the universe "*" walks, trades, minute bars
built from those trades, crypto sizes; and "*" over a real WebSocket."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

from apps.simulator import AlpacaSimulator, SimulatorConfig
from apps.simulator.market import CRYPTO_UNIVERSE, SessionMarket, build_universe
from apps.simulator.quotes import DEFAULT_UNIVERSE, QuoteGenerator
from tests.fixtures.simulator import SimulatorFactory, decode_frame, sim_client
from tests.helpers import eventually

MINUTE = 60_000_000_000


def test_a_universe_of_ten_thousand_symbols_and_its_skew() -> None:
    flat = build_universe(10_000)
    assert len(set(flat)) == len(flat) == 10_000
    assert flat[:10] == DEFAULT_UNIVERSE
    skewed = build_universe(10_000, skew=1.0, seed=7)
    counts = Counter(skewed)
    assert len(counts) == 10_000  # every symbol comes up
    # Zipf-like: the first name trades far more than the median one.
    assert counts["AAPL"] > 50 * counts["S5000"]


def test_trades_follow_ticks_and_bars_close_each_minute_from_them() -> None:
    market = SessionMarket.of(
        {"quotes": ["AAPL"], "trades": ["AAPL"], "bars": ["AAPL"]}, DEFAULT_UNIVERSE, crypto=False
    )
    ticks, _ = QuoteGenerator(3).next_ticks(("AAPL",), 0, 4)
    start = 1_700_000_040 * 10**9  # a minute mark
    first = market.frame(ticks[:3], start)
    assert [m["T"] for m in first] == ["q", "t"] * 3
    trades = [m for m in first if m["T"] == "t"]
    assert [t["i"] for t in trades] == [1, 2, 3]
    later = market.frame(ticks[3:], start + MINUTE + 5)
    bar = next(m for m in later if m["T"] == "b")
    prices = [t["p"] for t in trades]
    assert (bar["o"], bar["c"], bar["h"], bar["l"]) == (
        prices[0],
        prices[-1],
        max(prices),
        min(prices),
    )
    assert (bar["n"], bar["v"], bar["t"]) == (
        3,
        sum(t["s"] for t in trades),
        "2023-11-14T22:14:00Z",
    )
    assert bar["l"] <= bar["vw"] <= bar["h"]


def test_crypto_sessions_send_fractional_sizes_and_no_exchange_fields() -> None:
    market = SessionMarket.of({"quotes": ["*"], "trades": ["BTC/USD"]}, (), crypto=True)
    assert set(market.symbols) == set(CRYPTO_UNIVERSE)
    ticks, _ = QuoteGenerator(3).next_ticks(("BTC/USD",), 0, 2)
    quote, trade = market.frame(ticks[:1], 0)
    assert isinstance(quote["bs"], Decimal) and quote["bs"] != quote["bs"].to_integral()
    assert "bx" not in quote and "z" not in quote
    assert isinstance(trade["s"], Decimal) and trade["tks"] in ("B", "S")


async def test_the_wildcard_streams_the_configured_universe(
    simulator_factory: SimulatorFactory,
) -> None:
    sim: AlpacaSimulator = await simulator_factory(universe_size=5000, rate=2000.0, batch_size=50)
    seen: set[str] = set()
    async with sim_client(sim) as ws:
        await ws.send('{"action":"subscribe","quotes":["*"]}')

        async def more() -> bool:
            for message in decode_frame(await ws.recv()):
                if message.get("T") == "q":
                    seen.add(message["S"])
            return len(seen) >= 200

        while not await more():
            pass
    assert seen <= set(build_universe(5000))
    assert any(symbol.startswith("S") and symbol[1:].isdigit() for symbol in seen)
    assert SimulatorConfig(universe_size=10_000).universe_size == 10_000
    await eventually(lambda: sim.quotes_sent > 0)
