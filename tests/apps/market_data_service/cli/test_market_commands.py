"""``subscribe`` / ``unsubscribe`` with the whole market (``*``), crypto pairs and
``--channels``, and how ``subscriptions`` and ``status`` show them: the real console
script against a service served in the test, on the simulator (both feeds) and a real
Redis."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from apps.simulator import AlpacaSimulator
from tests.apps.market_data_service.cli.running import market_data
from tests.fixtures.service import Service, ServiceFactory, local_broker
from tests.helpers import eventually


@pytest.fixture
async def service(start_service: ServiceFactory, simulator: AlpacaSimulator) -> Service:
    """A connected service whose REST calls (positions, for status) go to the simulator."""
    started = await start_service(**local_broker(simulator))
    await started.wait_connected()
    return started


async def test_the_whole_market_and_channels_from_the_command_line(
    service: Service, simulator: AlpacaSimulator, tmp_path: Path
) -> None:
    api = ("--api", service.url)
    ran = await market_data("subscribe", "*", "msft", "--channels", "quotes,TRADES", *api,
                            cwd=tmp_path)  # fmt: skip
    assert ran.code == 0, ran.all
    assert ran.out.strip() == (
        "subscribed * (the whole stock market), MSFT (quotes, trades) (2 subscriptions in total)"
    )
    ran = await market_data("subscribe", "BTC/USD", "--channels", "bars", "--json", *api,
                            cwd=tmp_path)  # fmt: skip
    assert ran.code == 0, ran.all
    body = json.loads(ran.out)
    assert (body["subscribed_symbols"], body["channels"]) == (["BTC/USD"], ["bars"])
    stream = service.service.stream
    assert set(stream.crypto_connection.desired) == {"bars:BTC/USD"}  # the crypto feed's
    await eventually(lambda: "*" in simulator.subscribed_quotes, what="* at the broker")

    listed = await service.get("/api/v1/subscriptions")
    assert listed["channels"] == {"*": ["quotes", "trades"], "BTC/USD": ["bars"],
                                  "MSFT": ["quotes", "trades"]}  # fmt: skip
    ran = await market_data("subscriptions", *api, cwd=tmp_path)
    assert ran.code == 0, ran.all
    assert re.search(r"\* \(whole market\)\s*│\s*manual\s*│\s*quotes, trades", ran.out), ran.out
    assert re.search(r"BTC/USD\s*│\s*manual\s*│\s*bars", ran.out), ran.out
    assert re.search(r"MSFT\s*│\s*manual\s*│\s*quotes, trades", ran.out), ran.out

    ran = await market_data("status", *api, cwd=tmp_path)
    assert ran.code == 0, ran.all
    assert re.search(r"whole market \(\*\)\s*│\s*subscribed; \d+ symbols quoted", ran.out)
    assert re.search(r"\* \(whole market\)\s*│\s*manual\s*│\s*quotes, trades\s*│\s*-", ran.out)

    # One channel released; the symbol keeps the other.
    ran = await market_data("unsubscribe", "MSFT", "--channels", "trades", *api, cwd=tmp_path)
    assert ran.code == 0, ran.all
    assert ran.out.startswith("unsubscribed MSFT (trades) ("), ran.out
    assert (await service.get("/api/v1/subscriptions"))["channels"]["MSFT"] == ["quotes"]
    # The whole market released, every channel: the named ones stay.
    ran = await market_data("unsubscribe", "*", *api, cwd=tmp_path)
    assert ran.code == 0, ran.all
    assert ran.out.startswith("unsubscribed * (the whole stock market) ("), ran.out
    assert await service.sources() == {"BTC/USD": ["manual"], "MSFT": ["manual"]}
    await eventually(lambda: "*" not in simulator.subscribed_quotes, what="* released")


async def test_bad_channels_and_option_symbols_are_refused_here_with_exit_2(
    service: Service, tmp_path: Path
) -> None:
    api = ("--api", service.url)
    for args in (
        ("subscribe", "AAPL", "--channels", "quotes,orderbooks"),
        ("subscribe", "AAPL", "--channels", ","),
        ("unsubscribe", "AAPL", "--channels", "news"),
        ("subscribe", "AAPL240621C00190000"),
    ):
        ran = await market_data(*args, *api, cwd=tmp_path)
        assert (ran.code, ran.out, len(ran.err_lines)) == (2, "", 1), (args, ran.all)
    assert "--channels takes quotes, trades, bars" in ran.err or "option" in ran.err
    assert "options are out of scope" in ran.err
    assert await service.sources() == {}
