"""The facade: listening, routing requests by path, counting connections, stopping cleanly."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from apps.simulator import AlpacaSimulator, SimulatorConfig
from tests.apps.simulator.wire import subscribe
from tests.fixtures.simulator import SimulatorFactory, recv_frame, sim_client


@pytest.mark.parametrize("path", ["/", "/v2", "/v3/iex", "/v2/iex/extra", "/stream"])
async def test_unknown_paths_are_refused_with_http_404(
    simulator: AlpacaSimulator, path: str
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{simulator.port}{path}"):
            pass
    assert refused.value.response.status_code == 404
    assert simulator.total_connections == 0


@pytest.mark.parametrize(
    "path", ["/v2/iex", "/v2/sip", "/v2/delayed_sip", "/v2/test", "/v1beta1/boats"]
)
async def test_any_feed_under_v2_and_v1beta1_is_served(
    simulator: AlpacaSimulator, path: str
) -> None:
    async with connect(f"ws://127.0.0.1:{simulator.port}{path}") as ws:
        assert await recv_frame(ws) == [{"T": "success", "msg": "connected"}]


async def test_connection_counters(simulator: AlpacaSimulator) -> None:
    assert (simulator.open_connections, simulator.total_connections) == (0, 0)
    async with sim_client(simulator, authenticate=False):
        assert simulator.open_connections == 1
    async with sim_client(simulator, authenticate=False):
        pass
    await asyncio.sleep(0.05)
    assert (simulator.open_connections, simulator.total_connections) == (0, 2)


async def test_url_and_port(simulator: AlpacaSimulator) -> None:
    assert simulator.port > 0
    assert simulator.url() == f"ws://127.0.0.1:{simulator.port}/v2/iex"
    assert simulator.url("sip").endswith("/v2/sip")


async def test_stop_closes_sessions_and_leaves_no_task(
    simulator_factory: SimulatorFactory,
) -> None:
    sim = await simulator_factory(rate=1000, connection_limit=None)
    async with sim_client(sim) as a, sim_client(sim) as b:
        await subscribe(a, "AAPL")
        await subscribe(b, "MSFT")
        await sim.stop()
        for ws in (a, b):
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(2):
                    while True:
                        await ws.recv()
            assert ws.close_code == 1001
    assert sim.open_connections == 0
    leftovers = [task for task in asyncio.all_tasks() if task.get_name().startswith("simulator")]
    assert leftovers == []
    await sim.stop()  # idempotent


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "ws://127.0.0.1:8123/v2/iex"),
        ("0.0.0.0", "ws://127.0.0.1:8123/v2/iex"),
        ("", "ws://127.0.0.1:8123/v2/iex"),
        ("::", "ws://[::1]:8123/v2/iex"),
        ("::1", "ws://[::1]:8123/v2/iex"),
    ],
)
def test_urls_before_start_map_wildcard_hosts_to_loopback(host: str, url: str) -> None:
    sim = AlpacaSimulator(SimulatorConfig(host=host, port=8123))
    assert sim.port == 8123
    assert sim.url() == url
    assert sim.http_url() == url.replace("ws://", "http://").removesuffix("/v2/iex")


def test_pacing_hooks_show_in_the_attributes_without_a_socket() -> None:
    sim = AlpacaSimulator(SimulatorConfig(rate=40, batch_size=4))
    assert (sim.rate, sim.batch_size, sim.paused) == (40, 4, False)
    sim.set_rate(500, batch_size=8)
    sim.pause()
    assert (sim.rate, sim.batch_size, sim.paused) == (500.0, 8, True)
    sim.resume()
    assert not sim.paused
    with pytest.raises(ValueError, match="rate"):
        sim.set_rate(-1)
    assert sim.rate == 500.0


def test_counters_start_at_zero() -> None:
    sim = AlpacaSimulator()
    assert sim.config == SimulatorConfig()
    assert sim.open_connections == sim.authenticated_connections == sim.total_connections == 0
    assert (sim.auth_attempts, sim.quotes_sent, sim.client_messages) == (0, 0, [])
    assert sim.subscribed_quotes == frozenset()
    assert sim.last_quotes == {}


async def test_starting_twice_is_refused(simulator: AlpacaSimulator) -> None:
    with pytest.raises(RuntimeError, match="already started"):
        await simulator.start()
