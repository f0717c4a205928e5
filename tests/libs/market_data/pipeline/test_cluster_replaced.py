"""The notice for a primary replaced before it came back: what it says, who sends it."""

from __future__ import annotations

from libs.market_data.pipeline.cluster_replaced import busiest, recovered_details
from libs.market_data.pipeline.condition import Episode, SinkState


def update(topic: str) -> tuple[str, bytes, bytes]:
    return (topic, b"{}", b"{}")


def test_the_details_are_a_recovered_notices_plus_the_replaced_shard() -> None:
    episode = Episode(cause=SinkState.DOWN, started_at=1795000000.5)
    rewritten = [update("MSFT"), update("trades:AAPL"), update("AAPL"), update("bars:MSFT")]
    details = recovered_details(("10.0.0.7", 7001), episode, rewritten)
    assert details == {
        "cause": "down",
        "outage_started_at": 1795000000.5,
        "symbols_rewritten": ["AAPL", "MSFT"],  # symbols, each once, whatever the topic
        "shard": "10.0.0.7:7001",
    }


def test_the_notice_follows_the_successor_that_took_most_of_the_rewrites() -> None:
    route = {"AAPL": "b", "MSFT": "a", "TSLA": "b", "trades:TSLA": "b"}
    rewritten = [update(t) for t in ("MSFT", "AAPL", "TSLA", "trades:TSLA", "NVDA")]
    assert busiest(route, rewritten) == "b"
    assert busiest(route, []) is None
    assert busiest({}, rewritten) is None  # no owner known: the cluster sink sends it
