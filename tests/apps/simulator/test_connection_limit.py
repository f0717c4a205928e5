"""Alpaca's connection limit in the simulator: per key and feed, 406 after auth, and the
slot a dead socket keeps until the server notices (docs/concepts/websocket-streaming.md)."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import ClientConnection

from apps.simulator import AlpacaSimulator, SimulatorConfig
from tests.fixtures.simulator import SimulatorFactory, recv_frame, sim_client
from tests.helpers import eventually, quote

AUTH = json.dumps({"action": "auth", "key": "sim-key", "secret": "sim-secret"})
REFUSED = [{"T": "error", "code": 406, "msg": "connection limit exceeded"}]
ACCEPTED = [{"T": "success", "msg": "authenticated"}]


async def auth(ws: ClientConnection) -> list[dict[str, object]]:
    await ws.send(AUTH)
    return await recv_frame(ws)


async def test_the_default_is_one_connection(simulator: AlpacaSimulator) -> None:
    assert SimulatorConfig().connection_limit == 1
    async with sim_client(simulator) as holder, sim_client(simulator, authenticate=False) as extra:
        # The greeting came before; the refusal answers the auth, in Alpaca's exact words.
        await extra.send(AUTH)
        assert await extra.recv() == '[{"T":"error","code":406,"msg":"connection limit exceeded"}]'
        assert simulator.authenticated_connections == 1
        # The holder is untouched: it still gets its data.
        await simulator.send_quotes([quote("AAPL", "1.00", "1.01")])
        (received,) = await recv_frame(holder)
        assert received["S"] == "AAPL"


async def test_a_limit_of_two_refuses_the_third(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory(connection_limit=2)
    async with (
        sim_client(sim),
        sim_client(sim),
        sim_client(sim, authenticate=False) as third,
    ):
        assert await auth(third) == REFUSED
        assert sim.authenticated_connections == 2


async def test_the_slot_frees_when_the_holder_closes(simulator: AlpacaSimulator) -> None:
    async with sim_client(simulator, authenticate=False) as waiting:
        async with sim_client(simulator):
            assert await auth(waiting) == REFUSED
        # The holder's socket has closed: the next auth on the same socket gets in.
        await eventually(lambda: simulator.open_connections == 1, what="holder gone")
        assert await auth(waiting) == ACCEPTED


async def test_feeds_count_apart(simulator: AlpacaSimulator) -> None:
    # Alpaca's limit is per endpoint: one iex and one sip session may coexist.
    async with sim_client(simulator, feed="iex"), sim_client(simulator, feed="sip"):
        assert simulator.authenticated_connections == 2
        async with sim_client(simulator, feed="sip", authenticate=False) as extra:
            assert await auth(extra) == REFUSED


async def test_a_clean_close_frees_the_slot_even_with_a_release_delay(
    simulator_factory: SimulatorFactory,
) -> None:
    sim = await simulator_factory(connection_release_delay=60.0)
    async with sim_client(sim):
        pass
    await eventually(lambda: sim.open_connections == 0, what="closed")
    assert sim.held_connections == 0
    async with sim_client(sim):  # authenticated at once (sim_client checks it)
        pass


async def test_a_dead_socket_holds_its_slot_until_released(
    simulator_factory: SimulatorFactory,
) -> None:
    sim = await simulator_factory(connection_release_delay=60.0)
    async with sim_client(sim) as crashed:
        crashed.transport.abort()  # no closing handshake, as a killed process
        await eventually(lambda: sim.open_connections == 0, what="dead socket noticed")
    assert sim.held_connections == 1
    async with sim_client(sim, authenticate=False) as successor:
        assert await auth(successor) == REFUSED
        sim.release_held_connections()
        assert sim.held_connections == 0
        assert await auth(successor) == ACCEPTED


async def test_the_held_slot_frees_after_the_release_delay(
    simulator_factory: SimulatorFactory,
) -> None:
    delay = 0.5
    sim = await simulator_factory(connection_release_delay=delay)
    async with sim_client(sim) as crashed:
        aborted_at = time.monotonic()  # before the hold starts: a lower bound below
        crashed.transport.abort()
        await eventually(lambda: sim.open_connections == 0, what="dead socket noticed")
    async with sim_client(sim, authenticate=False) as successor:
        refused = 0
        deadline = time.monotonic() + 10
        while (answer := await auth(successor)) == REFUSED and time.monotonic() < deadline:
            refused += 1
            await asyncio.sleep(0.05)
        assert answer == ACCEPTED
        # Never before the delay ran out (how much later depends on the machine's load).
        assert time.monotonic() - aborted_at >= delay
    assert refused >= 1


@pytest.mark.parametrize("delay", [-1.0, float("inf"), float("nan")])
def test_a_bad_release_delay_is_refused(delay: float) -> None:
    with pytest.raises(ValueError, match="connection_release_delay"):
        SimulatorConfig(connection_release_delay=delay)
