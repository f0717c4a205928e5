"""Two plain instances (no leader election) on one account: Alpaca allows one connection,
so the second gets 406 (docs/deployment.md). It must retry with a growing back-off, never
storm the broker, and never disturb the instance that holds the connection."""

from __future__ import annotations

import itertools

from libs.market_data import BackoffPolicy
from libs.market_data.stream.records import ConnectionState
from tests.faults.harness import Harness
from tests.fixtures.fault_report import FaultReport
from tests.helpers import eventually

__all__: list[str] = []

BASE = 0.5  # RECONNECT_BASE_DELAY for the test (default 5 s); the rest are the defaults
REFUSALS = 4  # connection attempts of the second instance the test watches


def attempts_within(policy: BackoffPolicy, seconds: float) -> int:
    """The most attempts ``policy`` allows in ``seconds``: every delay at its shortest."""
    attempts, elapsed = 1, 0.0
    while attempts < policy.max_attempts:
        elapsed += policy.ceiling(attempts) * (1 - policy.jitter)
        if elapsed > seconds:
            break
        attempts += 1
    return attempts


async def test_a_second_plain_instance_backs_off_on_406_without_disturbing_the_first(
    harness: Harness, fault_report: FaultReport
) -> None:
    with fault_report.row("second instance, one connection allowed (406)") as row:
        sim = harness.sim
        assert sim.config.connection_limit == 1
        first = await harness.start()
        await harness.stream_symbols(first)
        held = first.service.stream.connection
        accepted = held.stats().frames_received
        before = sim.total_connections

        second = await harness.start(reconnect_base_delay=BASE, reconnect_max_delay=300.0)
        await eventually(
            lambda: sim.total_connections - before >= REFUSALS, 15, "the second's retries"
        )
        tried = sim.connection_times[before:]
        gaps = [later - earlier for earlier, later in itertools.pairwise(tried)]
        policy = second.service.stream.connection.backoff
        # Each wait at least the policy's shortest delay for that attempt: it grows.
        for attempt, gap in enumerate(gaps, start=1):
            assert gap >= policy.ceiling(attempt) * (1 - policy.jitter), (attempt, gaps)

        # Retryable, not fatal: the second keeps trying and says why.
        stats = second.service.stream.connection.stats()
        assert stats.state in (ConnectionState.RECONNECTING, ConnectionState.CONNECTING)
        assert stats.reconnect_causes.get("alpaca_406", 0) >= REFUSALS - 1
        code, body = await second.health()
        assert code == 503 or body["status"] != "healthy", body
        # The holder never lost its connection and kept receiving.
        assert sim.authenticated_connections == 1
        assert held.is_connected()
        assert held.stats().connections_opened == 1
        await eventually(lambda: held.stats().frames_received > accepted, what="data flowing")

        defaults = BackoffPolicy()
        per_minute = attempts_within(defaults, 60.0)
        row.injected = f"{len(tried)} tries, gaps " + "/".join(f"{g:.2f}" for g in gaps) + " s"

        row.lost = await harness.lost()
        row.survived = held.is_connected()
        row.note = f"with the default back-off at most {per_minute} attempts in the first minute"
        print(f"\n406 fight: {row.injected}; {row.note}")
        assert per_minute <= 5
        assert row.lost == 0
