"""Slow clients never slow the feed or other clients: a client that does not read has
its pending prices coalesced (latest-value, the count reported), and is closed with 1008
once behind for too long; a client that reads meanwhile gets every update, in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.market_data_service.streaming import ClientPolicy, ClientSession
from libs.redis_client import RedisConnectionParams
from tests.apps.market_data_service.streaming.streamclient import StreamClient, ws_url
from tests.apps.market_data_service.streaming.test_stream_faults import (
    converged,
    same_as_cache,
)
from tests.fixtures.service import Service, ServiceFactory
from tests.fixtures.write_path import SYMBOLS, Writer, writer
from tests.helpers import eventually

pytestmark = pytest.mark.timeout(90)


async def two_clients(service: Service, policy: ClientPolicy) -> tuple[StreamClient, StreamClient]:
    service.service.stream_hub.policy = policy
    fast = await StreamClient.open(ws_url(service.url))
    slow = await StreamClient.open(ws_url(service.url), reading=False, small_buffers=True)
    for client in (fast, slow):
        await client.subscribe(*SYMBOLS)
    await fast.wait_for("subscriptions")
    return fast, slow


def slow_session(service: Service, fast: StreamClient) -> ClientSession:
    # The one whose frames the fast client does not count: the session that sent fewer.
    sessions = service.service.stream_hub.sessions()
    assert len(sessions) == 2
    return min(sessions, key=lambda s: s.buffer.messages_sent)


async def write_until(
    w: Writer, done: Callable[[], bool], what: str, *, reader: StreamClient, pause: float = 0.0
) -> None:
    """Frames until ``done``, each once ``reader`` has every update of the one before.

    The writer, the service and both clients share this loop: a writer that ran ahead
    of the reading client would make it fall behind on a loaded machine, which is not
    what these tests are about. In step, a stalled client still fills its socket.
    """
    deadline = asyncio.get_running_loop().time() + 60
    expected = reader.counts["price"]
    while not done():
        assert asyncio.get_running_loop().time() < deadline, f"never {what}"
        await w.frame(per_symbol=50)
        expected += 50 * len(SYMBOLS)
        await eventually(
            lambda n=expected: reader.counts["price"] >= n, 10, "the reading client to keep up"
        )
        await asyncio.sleep(pause)


async def metrics(service: Service) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The stream's samples of /metrics: (name, labels) -> value."""
    reply = await service.http.get("/metrics")
    assert reply.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(reply.text)
        if family.name.startswith("market_data_stream")
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def every_update_in_order(fast: StreamClient) -> None:
    assert fast.of("coalesced") == [] and fast.of("resync") == []
    for symbol in SYMBOLS:
        seqs = [p["seq"] for p in fast.prices(symbol)]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), symbol  # no hole, no dup


async def test_behind_coalesces_then_catches_up(
    redis_params: RedisConnectionParams, start_service: ServiceFactory
) -> None:
    service = await start_service()
    fast, slow = await two_clients(service, ClientPolicy(max_behind=60))
    async with writer(redis_params) as w:
        await write_until(w, lambda: slow_session(service, fast).buffer.replaced_total > 0,
                          "coalesced", reader=fast)  # fmt: skip
        for _ in range(20):
            await w.frame(per_symbol=5)
        assert await w.sink.flush(5)
        await converged(fast, redis_params)
        slow.start_reading()
        await converged(slow, redis_params)
    (notice, *_) = slow.of("coalesced")
    assert notice["replaced"] > 0 and notice["symbols"] == sorted(SYMBOLS)
    every_update_in_order(fast)
    # /metrics and /health count it: both clients on the WebSocket, the updates replaced.
    seen = await metrics(service)
    replaced = slow_session(service, fast).buffer.replaced_total
    assert seen[("market_data_stream_updates_coalesced_total", ())] == replaced > 0
    assert seen[("market_data_stream_clients", (("transport", "ws"),))] == 2
    assert seen[("market_data_stream_clients", (("transport", "sse"),))] == 0
    assert seen[("market_data_stream_hub_state", (("state", "streaming"),))] == 1
    sent = sum(c.buffer.messages_sent for c in service.service.stream_hub.sessions())
    assert seen[("market_data_stream_messages_sent_total", ())] == sent
    streaming = (await service.health())["streaming"]
    assert streaming["clients"] == {"ws": 2, "sse": 0} and streaming["coalesced"] == replaced
    # The slow one saw fewer updates, never one out of order (converged() checked it).
    assert len(slow.of("price")) < len(fast.of("price"))
    for client in (fast, slow):
        await client.close()


async def test_stalled_client_is_closed_with_1008_and_the_others_carry_on(
    redis_params: RedisConnectionParams, start_service: ServiceFactory
) -> None:
    service = await start_service()
    hub = service.service.stream_hub
    fast, slow = await two_clients(service, ClientPolicy(max_behind=0.5, close_grace=30))
    async with writer(redis_params) as w:
        # Asked again each time: which session is the slow one shows as they diverge.
        await write_until(
            w,
            lambda: slow_session(service, fast).condemned.is_set(),  # noqa: PLW0108
            "closed",
            reader=fast,
        )
        slow.start_reading()  # now it reads: it finds the close at the end of its backlog
        # The feed goes on, paced: flat out, it holds the shared loop (service, writer and
        # both clients are in this process) and the slow client's backlog, read in 4 KB
        # turns, took 10 s to reach the close: longer than a loaded machine allows.
        await write_until(
            w, lambda: slow.close_code is not None, "seen the close", reader=fast, pause=0.02
        )
        assert await w.sink.flush(5)
        await converged(fast, redis_params)
    assert slow.close_code == 1008
    assert slow.close_reason.startswith("too slow: ")
    assert hub.clients == 1 and hub.closed_slow == 1
    every_update_in_order(fast)
    # /metrics names the cause; the closed client's messages stay in the total.
    seen = await metrics(service)
    closed = {
        dict(labels)["cause"]: value
        for (name, labels), value in seen.items()
        if name == "market_data_stream_slow_clients_closed_total"
    }
    assert sum(closed.values()) == 1 and set(closed) == {"send_blocked", "behind", "pending_bytes"}
    assert seen[("market_data_stream_clients", (("transport", "ws"),))] == 1
    assert (
        seen[("market_data_stream_messages_sent_total", ())]
        > hub.sessions()[0].buffer.messages_sent
    )
    assert (await service.health())["streaming"]["slow_clients_closed"] == 1
    assert not same_as_cache(slow, redis_params)  # it left before the end
    await fast.close()
