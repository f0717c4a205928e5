"""A session's control protocol over real sockets: handshake, auth, subscriptions, limits."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from apps.simulator import AlpacaSimulator
from tests.fixtures.simulator import SimulatorFactory, recv_frame, sim_client
from tests.helpers import eventually

AUTH = {"action": "auth", "key": "sim-key", "secret": "sim-secret"}


def error(code: int, msg: str) -> list[dict[str, object]]:
    return [{"T": "error", "code": code, "msg": msg}]


async def assert_closed(ws: ClientConnection) -> None:
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(2):
            await ws.recv()


async def test_greeting_is_the_first_frame_as_json_text(simulator: AlpacaSimulator) -> None:
    async with connect(simulator.url()) as ws:
        assert await ws.recv() == '[{"T":"success","msg":"connected"}]'


async def test_auth_succeeds_with_the_configured_keys(simulator: AlpacaSimulator) -> None:
    async with connect(simulator.url()) as ws:
        await ws.recv()
        await ws.send(json.dumps(AUTH))
        assert await ws.recv() == '[{"T":"success","msg":"authenticated"}]'
    assert simulator.auth_attempts == 1
    assert simulator.client_messages == [AUTH]


async def test_wrong_keys_get_402_then_the_socket_closes(simulator: AlpacaSimulator) -> None:
    async with sim_client(simulator, authenticate=False) as ws:
        await ws.send(json.dumps({"action": "auth", "key": "sim-key", "secret": "wrong"}))
        assert await recv_frame(ws) == error(402, "auth failed")
        await assert_closed(ws)


async def test_no_auth_within_the_timeout_gets_404_then_close(
    simulator_factory: SimulatorFactory,
) -> None:
    sim = await simulator_factory(auth_timeout=0.2)
    async with sim_client(sim, authenticate=False) as ws:
        started = time.monotonic()
        assert await recv_frame(ws) == error(404, "auth timeout")
        assert 0.1 < time.monotonic() - started < 1.5
        await assert_closed(ws)


async def test_auth_timeout_does_not_hit_authenticated_sessions(
    simulator_factory: SimulatorFactory,
) -> None:
    sim = await simulator_factory(auth_timeout=0.2)
    async with sim_client(sim) as ws:
        await asyncio.sleep(0.4)
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["AAPL"]}))
        assert (await recv_frame(ws))[0]["T"] == "subscription"


@pytest.mark.parametrize("action", ["subscribe", "unsubscribe"])
async def test_subscription_changes_before_auth_get_401(
    simulator: AlpacaSimulator, action: str
) -> None:
    async with sim_client(simulator, authenticate=False) as ws:
        await ws.send(json.dumps({"action": action, "quotes": ["AAPL"]}))
        assert await recv_frame(ws) == error(401, "not authenticated")
        # Still open: the client can authenticate now.
        await ws.send(json.dumps(AUTH))
        assert await recv_frame(ws) == [{"T": "success", "msg": "authenticated"}]


async def test_second_auth_gets_403(simulator: AlpacaSimulator) -> None:
    async with sim_client(simulator) as ws:
        await ws.send(json.dumps(AUTH))
        assert await recv_frame(ws) == error(403, "already authenticated")


@pytest.mark.parametrize(
    "message",
    [
        "not json",
        "[1, 2",
        json.dumps(["auth"]),
        json.dumps({"action": "dance"}),
        json.dumps({"quotes": ["AAPL"]}),
        json.dumps({"action": "subscribe", "quotes": "AAPL"}),
        json.dumps({"action": "subscribe", "quotes": [42]}),
        json.dumps({"action": "subscribe", "quotes": ["AA PL"]}),
        json.dumps({"action": "subscribe", "quotes": ["-AAPL"]}),
        json.dumps({"action": "subscribe", "trades": ["X" * 21]}),
    ],
)
async def test_malformed_messages_get_400_and_the_session_survives(
    simulator: AlpacaSimulator, message: str
) -> None:
    async with sim_client(simulator) as ws:
        await ws.send(message)
        assert await recv_frame(ws) == error(400, "invalid syntax")
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["AAPL"]}))
        ack = await recv_frame(ws)
        assert ack[0]["quotes"] == ["AAPL"]
        assert simulator.subscribed_quotes == {"AAPL"}


async def test_subscription_ack_matches_the_documented_exchange(
    simulator: AlpacaSimulator,
) -> None:
    # The exact frames of the docs' example session (reference §1.3, vectors 11 and 13).
    async with sim_client(simulator) as ws:
        await ws.send(
            json.dumps(
                {
                    "action": "subscribe",
                    "trades": ["AAPL"],
                    "quotes": ["AMD", "CLDR"],
                    "bars": ["*"],
                }
            )
        )
        assert await ws.recv() == (
            '[{"T":"subscription","trades":["AAPL"],"quotes":["AMD","CLDR"],"bars":["*"],'
            '"updatedBars":[],"dailyBars":[],"statuses":[],"lulds":[],'
            '"corrections":["AAPL"],"cancelErrors":["AAPL"]}]'
        )
        await ws.send(json.dumps({"action": "unsubscribe", "bars": ["*"]}))
        assert await ws.recv() == (
            '[{"T":"subscription","trades":["AAPL"],"quotes":["AMD","CLDR"],"bars":[],'
            '"updatedBars":[],"dailyBars":[],"statuses":[],"lulds":[],'
            '"corrections":["AAPL"],"cancelErrors":["AAPL"]}]'
        )


async def test_subscriptions_are_additive_and_acks_carry_the_full_set(
    simulator: AlpacaSimulator,
) -> None:
    async with sim_client(simulator) as ws:
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["AAPL"]}))
        await recv_frame(ws)
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["msft", "AAPL"], "trades": []}))
        (ack,) = await recv_frame(ws)
        assert ack["quotes"] == ["AAPL", "MSFT"]
        assert simulator.subscribed_quotes == {"AAPL", "MSFT"}
        await ws.send(json.dumps({"action": "unsubscribe", "quotes": ["AAPL", "TSLA"]}))
        (ack,) = await recv_frame(ws)
        assert ack["quotes"] == ["MSFT"]
        assert simulator.subscribed_quotes == {"MSFT"}
        # alpaca-py's shape: channels first, action last, all channels in one message.
        await ws.send(json.dumps({"trades": ["MSFT"], "quotes": ["AAPL"], "action": "subscribe"}))
        (ack,) = await recv_frame(ws)
        assert list(ack) == [
            "T",
            "trades",
            "quotes",
            "bars",
            "updatedBars",
            "dailyBars",
            "statuses",
            "lulds",
            "corrections",
            "cancelErrors",
        ]
        assert ack["trades"] == ack["corrections"] == ack["cancelErrors"] == ["MSFT"]
        assert ack["quotes"] == ["MSFT", "AAPL"]
    # A closed session no longer counts.
    await asyncio.sleep(0.05)
    assert simulator.subscribed_quotes == frozenset()


async def test_wildcard_is_acknowledged_as_given(simulator: AlpacaSimulator) -> None:
    async with sim_client(simulator) as ws:
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["*"]}))
        (ack,) = await recv_frame(ws)
        assert ack["quotes"] == ["*"]
        assert simulator.subscribed_quotes == {"*"}


async def test_symbol_limit_refuses_the_whole_request_with_405(
    simulator_factory: SimulatorFactory,
) -> None:
    sim = await simulator_factory(symbol_limit=3)
    async with sim_client(sim) as ws:
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["AAPL", "MSFT"]}))
        await recv_frame(ws)
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["GOOGL", "AMZN"]}))
        assert await recv_frame(ws) == error(405, "symbol limit exceeded")
        assert sim.subscribed_quotes == {"AAPL", "MSFT"}
        # The same symbol on another channel does not count twice.
        await ws.send(json.dumps({"action": "subscribe", "trades": ["AAPL"], "quotes": ["GOOGL"]}))
        (ack,) = await recv_frame(ws)
        assert ack["quotes"] == ["AAPL", "MSFT", "GOOGL"]
        assert ack["trades"] == ["AAPL"]


async def test_reject_next_subscribe_refuses_once_and_changes_nothing(
    simulator: AlpacaSimulator,
) -> None:
    async with sim_client(simulator) as ws:
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["AAPL"]}))
        await recv_frame(ws)
        simulator.reject_next_subscribe()
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["MSFT"]}))
        assert await recv_frame(ws) == error(405, "symbol limit exceeded")
        assert simulator.subscribed_quotes == {"AAPL"}
        simulator.reject_next_subscribe(410)
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["MSFT"]}))
        assert await recv_frame(ws) == error(410, "invalid subscribe action for this feed")
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["MSFT"]}))
        (ack,) = await recv_frame(ws)
        assert ack["quotes"] == ["AAPL", "MSFT"]


async def test_connection_limit_answers_406_and_keeps_the_socket_for_a_retry(
    simulator: AlpacaSimulator,
) -> None:
    async with sim_client(simulator) as first, sim_client(simulator, authenticate=False) as second:
        await second.send(json.dumps(AUTH))
        assert await recv_frame(second) == error(406, "connection limit exceeded")
        assert simulator.open_connections == 2
        await first.close()
        # The server frees the slot once it has seen the socket go: wait for that, not race it.
        await eventually(lambda: simulator.open_connections == 1, what="the slot freed")
        # Retry auth on the same socket, as the Go SDK does.
        await second.send(json.dumps(AUTH))
        assert await recv_frame(second) == [{"T": "success", "msg": "authenticated"}]
    assert simulator.total_connections == 2
    assert simulator.auth_attempts == 3


async def test_connection_limit_none_is_unlimited(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory(connection_limit=None)
    async with sim_client(sim) as a, sim_client(sim) as b, sim_client(sim) as c:
        for ws, symbol in ((a, "AAPL"), (b, "MSFT"), (c, "*")):
            await ws.send(json.dumps({"action": "subscribe", "quotes": [symbol]}))
            await recv_frame(ws)
        assert sim.subscribed_quotes == {"AAPL", "MSFT", "*"}
        assert sim.open_connections == 3


async def test_fail_next_auth_answers_in_order_then_normally(simulator: AlpacaSimulator) -> None:
    simulator.fail_next_auth(406, 406)
    async with sim_client(simulator, authenticate=False) as ws:
        for _ in range(2):
            await ws.send(json.dumps(AUTH))
            assert await recv_frame(ws) == error(406, "connection limit exceeded")
        await ws.send(json.dumps(AUTH))
        assert await recv_frame(ws) == [{"T": "success", "msg": "authenticated"}]
    assert simulator.auth_attempts == 3


@pytest.mark.parametrize(
    ("code", "msg"), [(402, "auth failed"), (409, "insufficient subscription")]
)
async def test_fail_next_auth_with_a_fatal_code_closes(
    simulator: AlpacaSimulator, code: int, msg: str
) -> None:
    simulator.fail_next_auth(code)
    async with sim_client(simulator, authenticate=False) as ws:
        await ws.send(json.dumps(AUTH))
        assert await recv_frame(ws) == error(code, msg)
        await assert_closed(ws)
