"""A session's data loop over real sockets: content, pacing, batching, stalls, msgpack."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from decimal import Decimal

import msgpack
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from apps.simulator import AlpacaSimulator
from apps.simulator.quotes import DEFAULT_UNIVERSE, parse_rfc3339_ns
from tests.apps.simulator.wire import (
    MARKER,
    RFC3339_NS,
    collect,
    collect_until,
    drain_until_marker,
    quotes_at_least,
    quotes_of,
    subscribe,
)
from tests.fixtures.simulator import SimulatorFactory, decode_frame, recv_frame, sim_client


async def test_quotes_flow_only_for_subscribed_symbols(
    simulator_factory: SimulatorFactory,
) -> None:
    sim = await simulator_factory(rate=400)
    async with sim_client(sim) as ws:
        await subscribe(ws, "AAPL", "MSFT")
        quotes = quotes_of(await collect_until(ws, quotes_at_least(40)))
    assert {quote["S"] for quote in quotes} == {"AAPL", "MSFT"}
    assert {quote["T"] for quote in quotes} == {"q"}


async def test_generated_quotes_are_well_formed(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory(rate=2000, batch_size=20, seed=7)
    async with sim_client(sim) as ws:
        await subscribe(ws, "AAPL", "BRK.B", "SPY")
        frames = await collect_until(ws, quotes_at_least(200))
    quotes = quotes_of(frames)
    assert len(quotes) > 100
    for quote in quotes:
        assert list(quote) == ["T", "S", "bx", "bp", "bs", "ax", "ap", "as", "c", "z", "t"]
        bid, ask = quote["bp"], quote["ap"]
        assert isinstance(bid, Decimal) and isinstance(ask, Decimal)
        assert bid == round(bid, 2) and ask == round(ask, 2)
        assert Decimal(0) < bid <= ask
        assert Decimal("0.01") <= ask - bid <= Decimal("0.05")
        assert isinstance(quote["bs"], int) and quote["bs"] > 0
        assert isinstance(quote["as"], int) and quote["as"] > 0
        assert RFC3339_NS.fullmatch(quote["t"])
    # Each symbol moves by a few cents per step, not jumps.
    for symbol in ("AAPL", "BRK.B", "SPY"):
        bids = [q["bp"] for q in quotes if q["S"] == symbol]
        assert max(abs(b - a) for a, b in itertools.pairwise(bids)) <= Decimal("0.50")


async def test_rate_is_honoured_on_average(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory(rate=200)
    async with sim_client(sim) as ws:
        await subscribe(ws, "AAPL", "MSFT", "GOOGL")
        started = time.monotonic()
        # A count, not a window: 500 quotes are 2.5 s on schedule. Faster than the rate
        # fails the upper bound however loaded the machine; a loop stalled for over a
        # second in total is what the lower bound would take to fail.
        count = len(quotes_of(await collect_until(ws, quotes_at_least(500), within=15)))
        elapsed = time.monotonic() - started
    assert 0.7 * 200 * elapsed <= count <= 1.3 * 200 * elapsed + 10


async def test_frames_never_exceed_batch_size(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory(rate=3000, batch_size=7)
    async with sim_client(sim) as ws:
        await subscribe(ws, "AAPL")
        sizes = [len(frame) for frame in await collect_until(ws, quotes_at_least(301))]
    assert sizes and max(sizes) == 7
    assert sum(sizes) > 300


async def test_low_rates_send_one_quote_per_frame(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory(rate=40, batch_size=10)
    async with sim_client(sim) as ws:
        await subscribe(ws, "AAPL")
        frames = await collect_until(ws, lambda frames: len(frames) >= 10)
    assert frames and {len(frame) for frame in frames} == {1}


async def test_wildcard_streams_the_default_universe(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory(rate=1000)
    async with sim_client(sim) as ws:
        await subscribe(ws, "*", "ZZZZ")
        wanted = {*DEFAULT_UNIVERSE, "ZZZZ"}
        frames = await collect_until(ws, lambda got: {q["S"] for q in quotes_of(got)} >= wanted)
        symbols = {quote["S"] for quote in quotes_of(frames)}
    assert symbols == {*DEFAULT_UNIVERSE, "ZZZZ"}


async def test_quotes_stop_right_after_unsubscribe(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory(rate=2000, batch_size=5)
    async with sim_client(sim) as ws:
        await subscribe(ws, "AAPL", "MSFT")
        await collect(ws, 0.1)
        await ws.send(json.dumps({"action": "unsubscribe", "quotes": ["AAPL"]}))
        # Frames sent before the ack may still hold AAPL; none after it may.
        while (await recv_frame(ws))[0]["T"] != "subscription":
            pass
        after = quotes_of(await collect_until(ws, quotes_at_least(50)))
    assert after and {quote["S"] for quote in after} == {"MSFT"}


async def test_pause_stalls_data_and_resume_restarts_it(
    simulator_factory: SimulatorFactory,
) -> None:
    sim = await simulator_factory(rate=500)
    async with sim_client(sim) as ws:
        await subscribe(ws, "AAPL")
        sim.pause()
        await drain_until_marker(sim, ws)
        assert await collect(ws, 0.3) == []
        # The socket is alive during the stall: pings are answered.
        pong = await ws.ping()
        async with asyncio.timeout(1):
            await pong
        sim.resume()
        assert quotes_of(await collect_until(ws, quotes_at_least(1)))


async def test_set_rate_turns_generation_on_and_off(simulator: AlpacaSimulator) -> None:
    async with sim_client(simulator) as ws:
        await subscribe(ws, "AAPL")
        assert await collect(ws, 0.2) == []
        simulator.set_rate(1000, batch_size=4)
        frames = await collect_until(ws, quotes_at_least(101))
        assert len(quotes_of(frames)) > 100
        assert max(len(frame) for frame in frames) == 4
        simulator.set_rate(0)
        await drain_until_marker(simulator, ws)
        assert await collect(ws, 0.2) == []
    assert simulator.quotes_sent >= len(quotes_of(frames))


async def test_last_quotes_tracks_generated_quotes(simulator_factory: SimulatorFactory) -> None:
    sim = await simulator_factory(rate=500)
    async with sim_client(sim) as ws:
        await subscribe(ws, "AAPL")
        sim.pause()
        await drain_until_marker(sim, ws)
    last = sim.last_quotes["AAPL"]
    assert list(last) == ["T", "S", "bx", "bp", "bs", "ax", "ap", "as", "c", "z", "t"]
    assert isinstance(last["bp"], Decimal) and last["bp"] <= last["ap"]


async def test_at_full_speed_the_record_holds_the_last_quotes_streamed(
    simulator_factory: SimulatorFactory,
) -> None:
    # At this rate frames come from the quote tape (apps/simulator/tape.py).
    sim = await simulator_factory(rate=100_000, batch_size=200)
    async with sim_client(sim) as ws:
        await subscribe(ws, "AAPL", "MSFT", "SPY")
        frames = await collect_until(ws, quotes_at_least(5000))
        sim.pause()
        await sim.send_raw(MARKER)
        frames += await collect_until(ws, lambda got: bool(got) and got[-1][0]["T"] == "marker")
    quotes = quotes_of(frames[:-1])
    assert max(len(frame) for frame in frames) == 200
    for symbol in ("AAPL", "MSFT", "SPY"):
        own = [quote for quote in quotes if quote["S"] == symbol]
        assert sim.last_quotes[symbol] == own[-1]
        assert max(abs(b["bp"] - a["bp"]) for a, b in itertools.pairwise(own)) <= Decimal("0.50")
    for frame in frames[:-1]:
        times = [parse_rfc3339_ns(quote["t"]) for quote in frame]
        assert times == list(range(times[0], times[0] + len(frame)))


async def test_dead_socket_ends_its_session_quietly(
    simulator_factory: SimulatorFactory, caplog: pytest.LogCaptureFixture
) -> None:
    sim = await simulator_factory(rate=20000, batch_size=50)
    with caplog.at_level(logging.WARNING):
        async with sim_client(sim) as ws:
            await subscribe(ws, "AAPL")
            await collect(ws, 0.05)
            ws.transport.abort()
            with pytest.raises(ConnectionClosed):
                async with asyncio.timeout(2):
                    while True:  # frames received before the abort are still queued
                        await ws.recv()
        for _ in range(200):
            if sim.open_connections == 0:
                break
            await asyncio.sleep(0.01)
    assert sim.open_connections == 0
    assert [r for r in caplog.records if r.name.startswith("apps.simulator")] == []


async def test_msgpack_session_speaks_binary(simulator: AlpacaSimulator) -> None:
    headers = {"Content-Type": "application/msgpack"}
    async with connect(simulator.url(), additional_headers=headers) as ws:
        greeting = await ws.recv()
        # Conformance vector 1, byte for byte.
        assert greeting == bytes.fromhex("9182a154a773756363657373a36d7367a9636f6e6e6563746564")
        await ws.send(msgpack.packb({"action": "auth", "key": "sim-key", "secret": "sim-secret"}))
        assert await ws.recv() == bytes.fromhex(
            "9182a154a773756363657373a36d7367ad61757468656e74696361746564"
        )
        # alpaca-py sends its subscribe fragmented: BINARY fin=0, then an empty CONT.
        payload = msgpack.packb({"trades": ["MSFT"], "quotes": ["AAPL"], "action": "subscribe"})
        await ws.send([payload, b""])
        (ack,) = decode_frame(await ws.recv())
        assert ack["T"] == "subscription" and ack["quotes"] == ["AAPL"]
        assert ack["corrections"] == ["MSFT"]

        simulator.set_rate(500)
        raw = await ws.recv()
        assert isinstance(raw, bytes)
        quote = decode_frame(raw)[0]
        assert next(iter(quote)) == "T" and quote["S"] == "AAPL"
        assert isinstance(quote["bp"], float) and quote["bp"] <= quote["ap"]
        assert isinstance(quote["t"], msgpack.Timestamp)
        assert abs(quote["t"].to_unix_nano() - time.time_ns()) < 5_000_000_000

        simulator.set_rate(0)
        await simulator.send_quotes(
            [{"S": "AAPL", "bp": Decimal("133.85"), "t": "2024-07-24T07:56:53.639713735Z"}]
        )
        while True:
            (injected, *_) = decode_frame(await ws.recv())
            if injected.get("t") == msgpack.Timestamp.from_unix_nano(1721807813639713735):
                break
        assert injected["bp"] == 133.85
    assert simulator.client_messages[-1] == {
        "trades": ["MSFT"],
        "quotes": ["AAPL"],
        "action": "subscribe",
    }


async def test_json_client_may_send_binary_and_msgpack_client_json(
    simulator: AlpacaSimulator,
) -> None:
    async with sim_client(simulator, use_msgpack=True) as ws:
        await ws.send(json.dumps({"action": "subscribe", "quotes": ["AAPL"]}))
        (ack,) = await recv_frame(ws)
        assert ack["quotes"] == ["AAPL"]
    async with sim_client(simulator) as ws:
        await ws.send(msgpack.packb({"action": "subscribe", "quotes": ["MSFT"]}))
        (ack,) = await recv_frame(ws)
        assert ack["quotes"] == ["MSFT"]
