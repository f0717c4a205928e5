"""What one Redis absorbs at one ``SET ... EX`` plus one ``PUBLISH`` per quote.

``redis-benchmark -c 1 -P 100`` runs each command alone with our payload sizes against
the benchmark's own Redis; the ceiling of the naive design (both commands per quote) is
``1 / (1/set_rate + 1/publish_rate)``. The pipeline sends one ``SET`` per symbol per frame
(docs/architecture.md, "Fewer commands per quote"), so it may pass that ceiling; the
benchmark prints its throughput beside it.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from libs.redis_client import RedisConnectionParams

__all__ = ["Ceiling", "ceiling_figures", "ceiling_lines", "measure_ceiling"]

# A PriceData record and a PriceUpdateEvent of a realistic quote: the bytes Redis stores
# and delivers per quote in the benchmark.
_RECORD = (
    b'{"symbol":"SYM042","bid":"187.42","ask":"187.45","mid":"187.435","bid_size":3,'
    b'"ask_size":5,"timestamp":"2026-01-02T15:30:00.123456789Z","exchange":"Q",'
    b'"bid_exchange":"Q","ask_exchange":"P","seq":123456,"epoch":'
    b'"20260102T150000.123456Z-3f9a0c11d2e4"}'
)
_EVENT = (
    b'{"event_type":"price.updated","symbol":"SYM042","price":"187.435","bid":"187.42",'
    b'"ask":"187.45","bid_size":3,"ask_size":5,"seq":123456,"epoch":'
    b'"20260102T150000.123456Z-3f9a0c11d2e4","timestamp":"2026-01-02T15:30:00.123456789Z"}'
)
_RATE = re.compile(rb"([0-9.]+) requests per second")


@dataclass(frozen=True)
class Ceiling:
    set_per_s: float
    publish_per_s: float

    @property
    def quotes_per_s(self) -> float:
        """One SET and one PUBLISH per quote: 1 / (1/set + 1/publish)."""
        return 1.0 / (1.0 / self.set_per_s + 1.0 / self.publish_per_s)


async def _rate(params: RedisConnectionParams, requests: int, *command: bytes) -> float:
    binary = shutil.which("redis-benchmark")
    assert binary is not None
    args = ["-h", params.host, "-p", str(params.port), "-c", "1", "-P", "100"]
    args += ["-n", str(requests), "-q"]
    process = await asyncio.create_subprocess_exec(
        binary,
        *args,
        *[part.decode() for part in command],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    rates = _RATE.findall(out.replace(b"\r", b"\n"))
    if not rates:
        raise RuntimeError(f"redis-benchmark printed no rate: {out[-200:]!r}")
    return float(rates[-1])


async def measure_ceiling(
    params: RedisConnectionParams, requests: int = 2_000_000
) -> Ceiling | None:
    """SET ... EX and PUBLISH rates with our payloads; ``None`` without redis-benchmark."""
    if shutil.which("redis-benchmark") is None or params.unix_socket_path is not None:
        return None
    set_rate = await _rate(params, requests, b"SET", b"price:SYM042", _RECORD, b"EX", b"300")
    publish_rate = await _rate(params, requests, b"PUBLISH", b"price.updated.SYM042", _EVENT)
    return Ceiling(set_rate, publish_rate)


def ceiling_figures(ceiling: Ceiling, quotes_per_s: float) -> dict[str, float]:
    """The figures a scenario's result carries beside its throughput."""
    return {
        "redis_set_per_s": ceiling.set_per_s,
        "redis_publish_per_s": ceiling.publish_per_s,
        "redis_ceiling_quotes_per_s": ceiling.quotes_per_s,
        "vs_ceiling": quotes_per_s / ceiling.quotes_per_s,
    }


class _Result(Protocol):
    scenario: Any
    quotes_per_s: float
    extra: dict[str, Any]


def ceiling_lines(results: Sequence[_Result]) -> list[str]:
    """The ceiling, and each scenario measured against it."""
    measured = [r for r in results if "redis_ceiling_quotes_per_s" in r.extra]
    if not measured:
        return []
    first = measured[0].extra
    lines = [
        "",
        f"one Redis's ceiling at SET+PUBLISH per quote (redis-benchmark -c 1 -P 100): "
        f"{first['redis_ceiling_quotes_per_s']:,.0f} quotes/s "
        f"(SET ... EX {first['redis_set_per_s']:,.0f}/s, "
        f"PUBLISH {first['redis_publish_per_s']:,.0f}/s)",
    ]
    for r in measured:
        lines.append(
            f"  {r.scenario.name:<21}{r.quotes_per_s:>11,.0f} quotes/s = "
            f"{r.extra['vs_ceiling']:.2f}x the ceiling"
        )
    return lines
