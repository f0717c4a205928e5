"""Faults on the Redis side, most of them with the connection left open: refused writes
(OOM, READONLY), a lost dataset (FLUSHALL), a Redis paused at startup, a hung
(SIGSTOPped) Redis; plus a Redis killed outright, quotes out of order and a service
killed with SIGKILL. Each test checks, and records in the fault table:

- the cache converges on the exact latest quote per symbol within 3 s of the fault
  clearing (``lost``);
- Redis published no event for a price it never cached (its own ``MONITOR`` record);
- the subscription set survives;
- ``/health`` said ``degraded`` during the fault and named it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.faults.harness import (
    RATE,
    SYMBOLS,
    Harness,
    free_port,
    service_process,
    wait_healthy,
    watch_health,
)
from tests.fixtures.fault_report import FaultReport
from tests.fixtures.monitor import monitor
from tests.helpers import eventually, quote, status_notices

__all__: list[str] = []

REFUSALS = {
    "OOM": (("CONFIG", "SET", "maxmemory", "1"), ("CONFIG", "SET", "maxmemory", "0")),
    "READONLY": (("REPLICAOF", "127.0.0.1", "1"), ("REPLICAOF", "NO", "ONE")),
}


@pytest.mark.parametrize("error", sorted(REFUSALS))
async def test_refused_writes_while_streaming(
    harness: Harness, fault_report: FaultReport, error: str
) -> None:
    inject, clear = REFUSALS[error]
    with fault_report.row(f"Redis refuses writes ({error})") as row:
        harness.admin("CONFIG", "SET", "maxmemory-policy", "noeviction")
        running = await harness.start()
        await harness.stream_symbols(running)
        stats = running.service.stream.get_connection_stats
        async with (
            monitor(harness.redis_server.params) as log,
            status_notices(harness.redis_server.params) as notices,
            watch_health(running) as health,
        ):
            await log.wait_cached(SYMBOLS)
            harness.admin(*inject)
            await eventually(lambda: stats()["quotes_refused"] >= 40, what="writes refused")
            await eventually(lambda: health.degraded(error), what="health names the fault")
            row.injected = f"{stats()['quotes_refused']} writes refused"
            harness.admin(*clear)
            row.lost = await harness.lost()
            await eventually(
                lambda: any(n["event_type"] == "redis.recovered" for n in notices),
                what="recovery announced",
            )
        phantoms = log.phantom_events()
        row.lost += len(phantoms) + await harness.dropped(running)
        _, body = await running.health()
        row.survived = body["status"] == "healthy" and running.service.stream.is_connected()
        recovered = next(n for n in notices if n["event_type"] == "redis.recovered")
        rewritten = len(recovered["symbols_rewritten"])
        row.note = f"{rewritten} symbols rewritten; {len(phantoms)} phantom events"
        assert phantoms == []
        assert harness.saved_subscriptions() == set(SYMBOLS)
        assert recovered["cause"] == "refused"
        assert row.lost == 0
        assert row.survived


async def test_flushall_loses_the_subscription_hash_and_the_prices(
    harness: Harness, fault_report: FaultReport
) -> None:
    with fault_report.row("FLUSHALL while subscribed") as row:
        running = await harness.start(subscription_check_interval=0.2)
        await harness.stream_symbols(running)
        harness.sim.set_rate(0.0)
        await asyncio.sleep(0.1)
        async with monitor(harness.redis_server.params) as log:
            harness.admin("FLUSHALL")
            cleared = time.monotonic()
            row.injected = f"{len(harness.saved_subscriptions())} saved subscriptions left"
            # No quote flows now: only the service's own repair can bring these back.
            await eventually(lambda: harness.saved_subscriptions() == set(SYMBOLS), 3, "hash")
            row.lost = await harness.lost(within=3.0 - (time.monotonic() - cleared))
        reply = await running.http.post("/api/v1/subscribe", json={"symbols": ["NVDA"]})
        assert reply.status_code == 201
        row.lost += len(log.phantom_events())
        row.survived = running.service.stream.is_connected()
        row.note = f"hash rewritten {running.service.subscriptions.rewrites}x, prices rewritten"
        assert harness.saved_subscriptions() == {*SYMBOLS, "NVDA"}
        assert row.lost == 0


async def test_start_while_redis_is_paused(
    harness: Harness, fault_report: FaultReport, tmp_path: Path
) -> None:
    with fault_report.row("start while Redis paused") as row:
        first = await harness.start()
        await harness.stream_symbols(first, SYMBOLS[:3])
        await harness.stop(first)
        harness.sim.set_rate(0.0)
        # Long enough to look while it lasts, under load too (an unpause would wait on
        # the pause itself: Redis holds CLIENT UNPAUSE back like any other command).
        harness.admin("CLIENT", "PAUSE", "8000", "ALL")
        paused = time.monotonic()
        running = await harness.start()
        async with watch_health(running) as health:
            await eventually(
                lambda: health.degraded("subscriptions not restored"), 8, "health says why"
            )
            row.injected = f"degraded after {time.monotonic() - paused:.1f}s of pause"
            await eventually(
                lambda: harness.sim.subscribed_quotes == set(SYMBOLS[:3]), 10, "restored"
            )
        harness.sim.set_rate(RATE, batch_size=5)
        await eventually(running.service.stream.is_connected, what="streaming")
        row.lost = await harness.lost(SYMBOLS[:3])
        _, body = await running.health()
        row.survived = body["status"] == "healthy"
        row.note = f"/health answered in <= {health.slowest:.2f}s while paused"
        assert running.service.subscriptions.symbols() == sorted(SYMBOLS[:3])
        assert harness.saved_subscriptions() == set(SYMBOLS[:3])
        assert row.lost == 0
        assert row.survived


async def test_redis_hangs_sigstop_while_streaming(
    harness: Harness, fault_report: FaultReport
) -> None:
    with fault_report.row("Redis hung (SIGSTOP 3s)") as row:
        running = await harness.start(redis_write_timeout=0.5)
        await harness.stream_symbols(running)
        harness.sim.set_rate(2000.0, batch_size=10)
        stats = running.service.stream.get_connection_stats
        pid = harness.redis_server.pid
        assert pid is not None
        async with watch_health(running) as health, monitor(harness.redis_server.params) as log:
            await log.wait_cached(SYMBOLS)
            os.kill(pid, signal.SIGSTOP)
            try:
                received = stats()["quotes_received"]
                await eventually(lambda: health.degraded("not answering"), 5, "health says so")
                # The reader keeps reading while Redis is stopped.
                await eventually(
                    lambda: stats()["quotes_received"] >= received + 2000, 10, "reader reads"
                )
                read = stats()["quotes_received"] - received
                await asyncio.sleep(1.0)  # hold the fault a while longer
            finally:
                os.kill(pid, signal.SIGCONT)
            row.injected = f"{read} quotes read while hung"
            stale = await harness.lost()
        phantoms = len(log.phantom_events())
        dropped = await harness.dropped(running)
        row.lost = stale + phantoms + dropped
        _, body = await running.health()
        row.survived = body["status"] == "healthy"
        row.note = (
            f"/health answered in <= {health.slowest:.2f}s during the hang"
            f" (stale {stale}, phantom {phantoms}, dropped {dropped})"
        )
        assert health.slowest < 3.0  # its own budget (0.5 s) plus a loaded machine
        assert harness.saved_subscriptions() == set(SYMBOLS)
        assert row.lost == 0
        assert row.survived


async def test_redis_killed_and_restarted(harness: Harness, fault_report: FaultReport) -> None:
    with fault_report.row("Redis killed and restarted") as row:
        running = await harness.start()
        await harness.stream_symbols(running)
        async with watch_health(running) as health:
            await asyncio.to_thread(harness.redis_server.kill)
            await eventually(lambda: health.degraded("Redis unavailable"), 5, "degraded")
            row.injected = f"degraded: {health.degraded('Redis unavailable')[0][:30]}"
            await eventually(
                lambda: running.service.stream.sink.stats()["quotes_deferred"] > 0, 5, "deferred"
            )
            harness.sim.set_rate(0.0)
            assert running.service.stream.sink.pending_symbols <= len(SYMBOLS)
            await asyncio.to_thread(harness.redis_server.restart)
            back = time.monotonic()
            row.lost = await harness.lost()
            converged = time.monotonic() - back
        row.survived = running.service.stream.is_connected()
        row.note = f"cache converged {converged:.2f}s after Redis was back"
        assert row.lost == 0


async def test_out_of_order_quotes_never_replace_newer_ones(
    harness: Harness, fault_report: FaultReport
) -> None:
    with fault_report.row("quotes out of order") as row:
        running = await harness.start()
        await harness.stream_symbols(running, ["AAPL"])
        harness.sim.set_rate(0.0)
        base = datetime.now(UTC) + timedelta(seconds=5)
        newer = (base + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        older = base.strftime("%Y-%m-%dT%H:%M:%S.5Z")  # trimmed fraction, still older
        stats = running.service.stream.get_connection_stats
        async with monitor(harness.redis_server.params) as log:
            # Same frame, then the next frame.
            await harness.sim.send_quotes(
                [quote("AAPL", "10.00", "10.02", t=newer), quote("AAPL", "9.00", "9.02", t=older)]
            )
            await harness.sim.send_quotes([quote("AAPL", "8.00", "8.02", t=older)])
            await eventually(lambda: stats()["quotes_rejected"].get("stale") == 2, what="stale")
        row.injected = f"{stats()['quotes_rejected']['stale']} older quotes sent"
        events = [e for s, e in log.events() if s == "AAPL"]
        row.lost = int(harness.cached_mid("AAPL") != Decimal("10.01")) + len(log.phantom_events())
        row.survived = running.service.stream.is_connected()
        row.note = f"{len(events)} event(s) published, all for the newest quote"
        assert [e["timestamp"] for e in events] == [newer]
        assert row.lost == 0


async def test_sigkill_and_restart_announces_the_gap(
    harness: Harness, fault_report: FaultReport, tmp_path: Path
) -> None:
    with fault_report.row("service SIGKILLed, restarted") as row:
        port = free_port()
        process = service_process(harness, port, tmp_path)
        second = None
        try:
            await harness.stream_via(port)
            # At least one heartbeat since streaming started (it holds the beat's time).
            started = time.time()
            await eventually(
                lambda: float(harness.admin("GET", "market_data:heartbeat") or 0) > started,
                what="a heartbeat",
            )
            process.kill()
            await asyncio.to_thread(process.wait, 10)
            killed = time.time()
            row.injected = f"exit {process.returncode}"
            async with status_notices(harness.redis_server.params) as notices:
                await asyncio.sleep(0.5)  # prices are frozen meanwhile
                second = service_process(harness, port, tmp_path)
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                    await wait_healthy(http)
                await eventually(
                    lambda: any(n["event_type"] == "stream.reconnected" for n in notices),
                    what="gap announced",
                )
            notice = next(n for n in notices if n["event_type"] == "stream.reconnected")
            await eventually(lambda: harness.sim.subscribed_quotes == set(SYMBOLS), what="restored")
            row.lost = await harness.lost()
            row.survived = second.poll() is None
            row.note = f"gap {notice['gap_seconds']:.2f}s announced"
            # The gap runs from the last heartbeat (at most ~1 s before the kill) to the
            # new connection, so it covers the 0.5 s the service was down.
            assert notice["disconnected_at"] <= killed
            assert notice["gap_seconds"] >= 0.5
            assert notice["symbols"] == sorted(SYMBOLS)
            assert row.lost == 0
        finally:
            for proc in (process, second):
                if proc is not None and proc.poll() is None:
                    proc.terminate()
                    await asyncio.to_thread(proc.wait, 10)
