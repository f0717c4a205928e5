"""Injected frames and dropped connections, as every authenticated client sees them."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from apps.simulator import AlpacaSimulator
from tests.apps.simulator.wire import RFC3339_NS, collect
from tests.fixtures.simulator import SimulatorFactory, decode_frame, recv_frame, sim_client


async def test_send_quotes_keeps_the_exact_decimal_text(simulator: AlpacaSimulator) -> None:
    quote = {
        "S": "AAPL",
        "bx": "Q",
        "bp": Decimal("150.10"),
        "bs": 3,
        "ax": "P",
        "ap": Decimal("150.1234"),
        "as": 2,
        "c": ["R"],
        "z": "C",
        "t": "2026-11-24T15:30:01.123456789Z",
    }
    async with sim_client(simulator) as ws:
        await simulator.send_quotes([quote, {**quote, "S": "MSFT", "T": "q"}])
        raw = await ws.recv()
    assert isinstance(raw, str)
    assert raw.startswith('[{"T":"q","S":"AAPL","bx":"Q","bp":150.10,"bs":3,')
    assert '"ap":150.1234' in raw
    first, second = decode_frame(raw)
    assert first["bp"] == Decimal("150.10") and first["ap"] == Decimal("150.1234")
    assert first["t"] == "2026-11-24T15:30:01.123456789Z"
    assert next(iter(second)) == "T"
    assert simulator.last_quotes["AAPL"]["bp"] == Decimal("150.10")
    assert simulator.last_quotes["MSFT"]["S"] == "MSFT"
    assert simulator.quotes_sent == 2


async def test_send_quotes_fills_in_the_type_and_time(simulator: AlpacaSimulator) -> None:
    async with sim_client(simulator) as ws:
        await simulator.send_quotes([{"S": "AAPL", "bp": Decimal("1.00"), "ap": Decimal("1.01")}])
        ((quote,),) = [await recv_frame(ws)]
    assert quote["T"] == "q"
    assert RFC3339_NS.fullmatch(quote["t"])


async def test_send_quotes_skips_unauthenticated_sessions(simulator: AlpacaSimulator) -> None:
    async with sim_client(simulator, authenticate=False) as ws:
        await simulator.send_quotes([{"S": "AAPL", "bp": Decimal("1"), "ap": Decimal("2")}])
        assert await collect(ws, 0.1) == []


async def test_send_raw_and_send_error(simulator: AlpacaSimulator) -> None:
    async with sim_client(simulator) as ws:
        await simulator.send_raw('[{"T":"q","S":"AAPL","bp":"oops"')
        assert await ws.recv() == '[{"T":"q","S":"AAPL","bp":"oops"'
        await simulator.send_raw(b"\x00\x01binary")
        assert await ws.recv() == b"\x00\x01binary"
        await simulator.send_error(407, "slow client")
        assert await ws.recv() == '[{"T":"error","code":407,"msg":"slow client"}]'
        await simulator.send_error(500)
        assert await recv_frame(ws) == [{"T": "error", "code": 500, "msg": "internal error"}]


async def test_drop_connections_aborts_without_a_close_frame(simulator: AlpacaSimulator) -> None:
    async with sim_client(simulator) as ws:
        await simulator.drop_connections()
        assert simulator.open_connections == 0
        with pytest.raises(ConnectionClosedError):
            async with asyncio.timeout(2):
                await ws.recv()
        # 1006: the connection ended without a close frame.
        assert ws.close_code == 1006


async def test_drop_connections_clean_sends_going_away(simulator: AlpacaSimulator) -> None:
    async with sim_client(simulator) as ws:
        await simulator.drop_connections(clean=True)
        with pytest.raises(ConnectionClosedOK):
            async with asyncio.timeout(2):
                await ws.recv()
        assert ws.close_code == 1001
    assert simulator.open_connections == 0
    # The server keeps accepting after a drop.
    async with sim_client(simulator):
        pass


async def test_json_and_msgpack_sessions_get_the_same_injected_quote(
    simulator_factory: SimulatorFactory,
) -> None:
    sim = await simulator_factory(connection_limit=None)
    async with sim_client(sim) as text, sim_client(sim, use_msgpack=True) as binary:
        await sim.send_quotes([{"S": "AAPL", "bp": Decimal("10.05"), "ap": Decimal("10.07")}])
        (from_text,) = await recv_frame(text)
        (from_binary,) = await recv_frame(binary)
    assert from_text["bp"] == Decimal("10.05")
    assert from_binary["bp"] == 10.05
    assert from_binary["t"].to_unix_nano() > 0
