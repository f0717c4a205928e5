"""The benchmark subscriber's counter: exact counts over arbitrary read boundaries."""

from __future__ import annotations

import json

import hiredis
import pytest

from apps.bench.processes import EventCounter, parse_ns


def pmessage(symbol: str, ts: str) -> bytes:
    # Compact JSON, as the service publishes it.
    event = {"symbol": symbol, "price": "1.5", "timestamp": ts}
    payload = json.dumps(event, separators=(",", ":")).encode()
    # A pmessage reply has the same RESP framing as a command array.
    return hiredis.pack_command(
        (b"pmessage", b"price.updated.*", f"price.updated.{symbol}".encode(), payload)
    )


TS = "2026-11-24T15:30:01.123456789Z"


@pytest.mark.parametrize("chunk", [1, 3, 7, 13, 14, 15, 64, 10_000])
def test_counts_every_event_whatever_the_read_size(chunk: int) -> None:
    stream = b"".join(pmessage(f"S{i}", TS) for i in range(50))
    counter = EventCounter()
    latencies: list[int] = []
    count = 0
    for start in range(0, len(stream), chunk):
        count = counter.feed(
            stream[start : start + chunk],
            count,
            10,
            latencies,
            parse_ns(b"2026-11-24T15:30:02.123456789Z"),
        )
    assert count == 50
    # every 10th event sampled, except those whose timestamp straddled a read boundary
    assert len(latencies) <= 5
    assert all(latency == 10**9 for latency in latencies)
    if chunk >= 10_000:
        assert len(latencies) == 5


def test_parse_ns_precision() -> None:
    assert parse_ns(b"2026-11-24T15:30:01.5Z") - parse_ns(b"2026-11-24T15:30:01Z") == 5 * 10**8
    assert parse_ns(b"2026-11-24T15:30:01.000000001Z") - parse_ns(b"2026-11-24T15:30:01Z") == 1
