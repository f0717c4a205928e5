"""The benchmark's scenarios, its options, and the record of one scenario's run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["BenchOptions", "Mode", "Result", "Scenario", "scenarios"]

# pipelined: ``market-data serve`` on one Redis; cluster: the same on a 3-primary Redis
# Cluster; naive: the spec's per-quote design, in the bench's own process (a baseline).
Mode = Literal["pipelined", "naive", "cluster"]


@dataclass(frozen=True)
class Scenario:
    name: str
    mode: Mode
    symbols: int
    batch: int
    rate: float  # offered quotes/s; above capacity the socket's backpressure paces the sender
    duration: float
    sample_every: int  # latency of every n-th event
    # LEADER_ELECTION=redis: the elected leader's writer is fenced (docs/leadership.md)
    fenced: bool = False
    # False: MARKET_DATA_NATIVE=0, the Python path alone (docs/architecture.md, "Native
    # quote path"): its ratio to the same scenario on the native path, in one run.
    native: bool = True


@dataclass
class Result:
    scenario: Scenario
    quotes_per_s: float
    cpu_us_per_quote: float | None
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    sent: int
    received: int
    lost: int | None
    rss_start_mb: float
    rss_end_mb: float
    rss_max_mb: float | None = None
    # Where the machine's cores go, per delivered quote: the service's figure is
    # cpu_us_per_quote; the helpers' beside it (Redis: all its processes together).
    sim_cpu_us_per_quote: float | None = None
    redis_cpu_us_per_quote: float | None = None
    subscriber_cpu_us_per_quote: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchOptions:
    duration: float = 10.0
    memory_duration: float = 60.0
    output: Path = Path("bench-results.json")
    only: tuple[str, ...] = ()


def scenarios(options: BenchOptions) -> list[Scenario]:
    d = options.duration
    return [
        Scenario("throughput", "pipelined", 100, 200, 2_000_000, d, 50),
        # The same with connection fencing (LEADER_ELECTION=redis): its ratio to the above.
        Scenario("throughput-fenced", "pipelined", 100, 200, 2_000_000, d, 50, fenced=True),
        Scenario("throughput-python", "pipelined", 100, 200, 2_000_000, d, 50, native=False),
        Scenario("throughput-naive", "naive", 100, 200, 2_000_000, d, 5),
        # The throughput scenario on a private 3-primary Redis Cluster (docs/cluster.md).
        Scenario("cluster-3", "cluster", 100, 200, 2_000_000, d, 50),
        # symbols=0: "*", the simulator's 10,000-symbol Zipf-skewed universe (issue 14).
        Scenario("whole-market", "pipelined", 0, 200, 2_000_000, d, 50),
        Scenario("whole-market-python", "pipelined", 0, 200, 2_000_000, d, 50, native=False),
        Scenario("one-per-frame", "pipelined", 100, 1, 200_000, d, 20),
        Scenario("latency-20k", "pipelined", 100, 10, 20_000, d, 1),
        # The whole market at full speed for a minute: the service's RSS must stay flat.
        Scenario("memory", "pipelined", 0, 200, 2_000_000, options.memory_duration, 100),
    ]
