"""PriceSubscriber against a real redis-server, a real QuoteProcessor and RedisPriceSink.

In every case the subscriber must end with the exact latest price of every symbol, and
each gap it lived through must show as a ``resync`` update.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import redis

from libs.market_data import PriceSubscriber, SyncPriceSubscriber
from libs.market_data.keys import DEFAULT_KEYS, KeySpace
from libs.redis_client import RedisConnectionParams
from tests.fixtures.write_path import SYMBOLS, Collector, cached, writer
from tests.helpers import eventually


async def converged(
    sub: PriceSubscriber,
    params: RedisConnectionParams,
    symbols: tuple[str, ...] = SYMBOLS,
    keys: KeySpace = DEFAULT_KEYS,
) -> None:
    def same() -> bool:
        for s in symbols:
            want, got = cached(params, s, keys), sub.latest(s)
            if got is None or (got.mid, got.bid, got.ask, got.seq, got.epoch) != (
                want.mid,
                want.bid,
                want.ask,
                want.seq,
                want.epoch,
            ):
                return False
        return True

    await eventually(same, timeout=10, what="the subscriber holds every latest price")


async def test_snapshot_then_updates_without_hole_or_duplicate(
    redis_params: RedisConnectionParams,
) -> None:
    async with writer(redis_params) as w:
        for _ in range(20):
            await w.frame()
        assert await w.sink.flush(5)
        sub = PriceSubscriber(redis_params.to_url(), symbols=["aapl", "MSFT"])
        await sub.connect()
        collector = Collector(sub)
        for _ in range(300):
            await w.frame()
        assert await w.sink.flush(5)
        await converged(sub, redis_params, ("AAPL", "MSFT"))
        await collector.stop()
    kinds = [u.kind for u in collector.updates]
    assert kinds[:2] == ["snapshot", "snapshot"]
    assert collector.resyncs() == []
    assert {u.symbol for u in collector.updates} == {"AAPL", "MSFT"}  # GOOGL not asked for
    # Every event after the snapshot arrived exactly once: snapshot seq 20, then 21..320.
    aapl = [u.price.seq for u in collector.updates if u.symbol == "AAPL" and u.price]
    assert aapl == list(range(20, 321))
    assert sub.latest("AAPL") is not None and sub.latest("AAPL").mid == Decimal("3.205")  # type: ignore[union-attr]


async def test_connection_killed_mid_stream_resyncs(redis_params: RedisConnectionParams) -> None:
    async with writer(redis_params) as w:
        await w.frame()
        assert await w.sink.flush(5)
        async with PriceSubscriber(redis_params, symbols="*") as sub:
            collector = Collector(sub)
            admin = redis.Redis(**redis_params.redis_kwargs())
            try:
                for i in range(400):
                    await w.frame()
                    if i == 100:
                        assert await w.sink.flush(5)
                        assert admin.client_kill_filter(_type="pubsub") >= 1
                    await asyncio.sleep(0)
            finally:
                admin.close()
            assert await w.sink.flush(5)
            await converged(sub, redis_params)
            await collector.stop()
    assert sub.reconnects >= 1
    assert [u.reason for u in collector.resyncs()][:1] == ["reconnected"]


async def test_output_buffer_overflow_resyncs(redis_factory: Callable[..., object]) -> None:
    server = redis_factory()
    params: RedisConnectionParams = server.params  # type: ignore[attr-defined]
    admin = redis.Redis(**params.redis_kwargs())
    try:
        admin.config_set("client-output-buffer-limit", "pubsub 1kb 1kb 0")
        async with writer(params) as w:
            await w.frame()
            assert await w.sink.flush(5)
            async with PriceSubscriber(params, symbols=SYMBOLS) as sub:
                first = [await sub.__anext__() for _ in SYMBOLS]
                assert {u.kind for u in first} == {"snapshot"}
                # A burst while the subscriber does not read: Redis drops it.
                for _ in range(50):
                    await w.frame(per_symbol=100)
                assert await w.sink.flush(5)
                # Redis closed the subscriber's connection (no pub/sub client is left).
                assert admin.client_list(_type="pubsub") == []
                collector = Collector(sub)
                await converged(sub, params)
                await collector.stop()
    finally:
        admin.close()
    assert "reconnected" in [u.reason for u in collector.resyncs()]
    assert sub.latest("GOOGL").seq == 5001  # type: ignore[union-attr]


async def test_a_new_epoch_resyncs_even_though_its_seqs_are_lower(
    redis_params: RedisConnectionParams,
) -> None:
    async with PriceSubscriber(redis_params, symbols=SYMBOLS) as sub:
        collector = Collector(sub)
        async with writer(redis_params) as old:
            for _ in range(200):
                await old.frame()
            assert await old.sink.flush(5)
            await converged(sub, redis_params)
        # Another writer (a restart): its numbering starts again at 1.
        async with writer(redis_params) as new:
            assert new.processor.epoch != old.processor.epoch
            new.n = 1000
            for _ in range(10):
                await new.frame()
            assert await new.sink.flush(5)
            await converged(sub, redis_params)
        await collector.stop()
    latest = sub.latest("MSFT")
    assert latest is not None and (latest.epoch, latest.seq) == (new.processor.epoch, 10)
    assert latest.mid == Decimal("10.105")
    reasons = [u.reason for u in collector.resyncs()]
    assert reasons.count("epoch") == len(SYMBOLS), reasons


async def test_a_seq_jump_resyncs(redis_params: RedisConnectionParams) -> None:
    async with writer(redis_params) as w:
        await w.frame()
        assert await w.sink.flush(5)
        async with PriceSubscriber(redis_params, symbols=SYMBOLS) as sub:
            collector = Collector(sub)
            await w.frame()
            # Two events lost on the way (processed, numbered, cached, never announced).
            for _ in range(2):
                w.n += 1
                (update,) = w.processor.process([w.quote("AAPL")], {"AAPL"})
                with redis.Redis(**redis_params.redis_kwargs()) as client:
                    client.set("price:AAPL", update[1])
            await w.frame()
            assert await w.sink.flush(5)
            await converged(sub, redis_params)
            await collector.stop()
    assert [(u.reason, u.symbols) for u in collector.resyncs()] == [("seq_gap", ("AAPL",))]
    assert sub.latest("AAPL").seq == 5 and sub.latest("MSFT").seq == 3  # type: ignore[union-attr]


async def test_a_rewrite_republishes_the_same_seq_and_is_dropped(
    redis_params: RedisConnectionParams,
) -> None:
    async with writer(redis_params) as w:
        await w.frame()
        assert await w.sink.flush(5)
        async with PriceSubscriber(redis_params, symbols=SYMBOLS) as sub:
            collector = Collector(sub)  # fails on a duplicate
            await w.frame()
            assert await w.sink.flush(5)
            # The sink's rewrite (as after the cache lost its data): same JSON, same seq.
            assert w.sink.resend_latest() == len(SYMBOLS)
            assert await w.sink.flush(5)
            await eventually(lambda: sub.duplicates_dropped == len(SYMBOLS), what="dropped")
            await w.frame()
            assert await w.sink.flush(5)
            await converged(sub, redis_params)
            await collector.stop()
    assert collector.resyncs() == []
    assert [u.price.seq for u in collector.updates if u.symbol == "AAPL" and u.price] == [1, 2, 3]


async def test_a_status_notice_resyncs(redis_params: RedisConnectionParams) -> None:
    async with writer(redis_params) as w:
        await w.frame()
        assert await w.sink.flush(5)
        async with PriceSubscriber(redis_params, symbols=["AAPL"]) as sub:
            collector = Collector(sub)
            w.sink.publish_status("stream.disconnected", {"url": "x"})  # not a gap by itself
            w.sink.publish_status("stream.reconnected", {"url": "x", "gap_seconds": 1.0})
            await eventually(collector.resyncs, what="a resync")
            await collector.stop()
    (resync,) = collector.resyncs()
    assert (resync.reason, resync.symbols) == ("notice:stream.reconnected", ("AAPL",))
    assert collector.updates[-1].kind == "snapshot"


async def test_a_namespace_is_kept_apart(redis_params: RedisConnectionParams) -> None:
    paper = KeySpace("paper")
    async with (
        writer(redis_params) as plain,
        writer(redis_params, paper) as namespaced,
        PriceSubscriber(redis_params, symbols="*", keys=paper) as sub,
    ):
        collector = Collector(sub)
        for _ in range(5):
            await plain.frame(("TSLA",))
            await namespaced.frame(("AAPL",))
        assert await namespaced.sink.flush(5) and await plain.sink.flush(5)
        await converged(sub, redis_params, ("AAPL",), paper)
        await collector.stop()
    assert sub.latest("TSLA") is None
    assert {u.symbol for u in collector.updates} == {"AAPL"}


async def test_the_sync_wrapper(redis_params: RedisConnectionParams) -> None:
    async with writer(redis_params) as w:
        await w.frame()
        assert await w.sink.flush(5)
        sync = SyncPriceSubscriber(redis_params, symbols=["AAPL"])
        await asyncio.to_thread(sync.start)
        try:
            first = await asyncio.to_thread(sync.get, 5)
            assert first is not None and first.kind == "snapshot"
            await w.frame()
            assert await w.sink.flush(5)
            update = await asyncio.to_thread(sync.get, 5)
            assert update is not None and update.kind == "update" and update.price is not None
            assert update.price.seq == 2
            assert sync.latest("AAPL") == update.price
        finally:
            await asyncio.to_thread(sync.close)
        assert await asyncio.to_thread(sync.get, 1) is None


async def test_redis_restarted_mid_stream_reconnects_and_resyncs(
    redis_factory: Callable[..., object],
) -> None:
    # Redis gone and back empty (no persistence): the subscriber reconnects with backoff,
    # says so, and ends on what the writer cached after the restart.
    server = redis_factory()
    params: RedisConnectionParams = server.params  # type: ignore[attr-defined]
    async with writer(params) as w:
        await w.frame()
        assert await w.sink.flush(5)
        async with PriceSubscriber(params, symbols=SYMBOLS) as sub:
            collector = Collector(sub)
            await converged(sub, params)
            await asyncio.to_thread(server.restart)  # type: ignore[attr-defined]
            await eventually(lambda: sub.reconnects >= 1, timeout=10, what="a reconnect")
            for _ in range(20):
                await w.frame()
            assert await w.sink.flush(10)
            await eventually(lambda: _all_cached(params), timeout=10, what="rewritten")
            await converged(sub, params)
            await collector.stop()
    assert "reconnected" in [u.reason for u in collector.resyncs()]


def _all_cached(params: RedisConnectionParams) -> bool:
    with redis.Redis(**params.redis_kwargs()) as client:
        return all(client.exists(DEFAULT_KEYS.price_key(s)) for s in SYMBOLS)
