"""``/metrics`` through the running service: it parses with the Prometheus text parser,
and its counters equal what the test sent through the simulator and read over HTTP."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from apps.simulator import AlpacaSimulator
from libs.market_data import ConnectionState, RejectReason
from tests.apps.market_data_service.observability.scrape import Scrape, scrape
from tests.fixtures.service import Service, ServiceFactory
from tests.fixtures.simulator import SimulatorFactory
from tests.helpers import eventually, quote


async def subscribe(service: Service, *symbols: str) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": list(symbols)})
    assert reply.status_code == 201, reply.text


def stats(service: Service) -> dict[str, Any]:
    return service.stream.get_connection_stats()


async def wait_received(service: Service, total: int) -> None:
    """Until the stream has handled ``total`` quotes and Redis acknowledged their writes."""
    await eventually(lambda: stats(service)["quotes_received"] == total, what=f"{total} quotes")
    assert await service.stream.sink.flush(5.0)


async def test_metrics_parse_and_count_exactly_what_was_sent(
    service: Service,
    simulator: AlpacaSimulator,
) -> None:
    await subscribe(service, "AAPL", "MSFT")
    service.stream.latency_sample_interval = 0.0  # every frame, for exact counts
    before = await scrape(service.http)
    await simulator.send_quotes(
        [
            quote("AAPL", "10.00", "10.02"),
            quote("AAPL", "10.01", "10.03"),
            quote("AAPL", "10.05", "10.01"),  # crossed
            quote("MSFT", "-1.00", "1.00"),  # negative price
            quote("MSFT", "400.00", "400.02"),
        ]
    )
    await simulator.send_quotes(
        [
            quote("MSFT", "400.01", "400.03"),
            quote("MSFT", "401.00", "400.00"),  # crossed
            quote("AAPL", "10.00", "10.02", bs=-5),  # negative size
            quote("AAPL", "10.02", "10.04"),
        ]
    )
    await wait_received(service, 9)
    after = await scrape(service.http)

    def delta(name: str) -> float:
        return after.value(name) - before.value(name)

    assert delta("market_data_frames_received_total") == 2
    assert after.value("market_data_quotes_received_total") == 9
    assert after.value("market_data_quotes_accepted_total") == 5
    assert after.labelled("market_data_quotes_rejected_total", "reason") == {
        RejectReason.CROSSED.value: 2,
        RejectReason.NEGATIVE_PRICE.value: 1,
        RejectReason.NEGATIVE_SIZE.value: 1,
        RejectReason.MALFORMED.value: 0,
        RejectReason.UNSUBSCRIBED.value: 0,
        RejectReason.STALE.value: 0,
        RejectReason.OUT_OF_RANGE.value: 0,  # bars only; listed for a stable series set
    }
    assert after.value("market_data_events_published_total") == 5
    # Two Redis batches per frame (its cache writes, then their events once the writes
    # landed) and one latency sample per frame, never per quote.
    # (deltas: the writer also carries the stream's status notices)
    assert delta("market_data_redis_round_trips_total") == 4
    assert delta("market_data_redis_write_round_trip_seconds_count") == 4
    assert after.value("market_data_cache_write_latency_seconds_count") == 2
    assert after.value("market_data_cache_write_latency_seconds_bucket", le="+Inf") == 2
    assert 0 <= after.value("market_data_cache_write_latency_seconds_sum") < 5
    assert after.value("market_data_redis_reply_errors_total") == 0
    assert after.value("market_data_redis_connected") == 1
    assert after.value("market_data_subscribed_symbols") == 2
    assert after.value("market_data_symbols_without_quotes") == 0
    ages = after.labelled("market_data_last_update_age_seconds", "symbol")
    assert set(ages) == {"AAPL", "MSFT"}
    assert all(0 <= age < 5 for age in ages.values())
    states = after.labelled("market_data_connection_state", "state")
    assert states == {
        s.value: (1.0 if s is ConnectionState.CONNECTED else 0.0) for s in ConnectionState
    }
    # Names and types follow Prometheus conventions.
    assert after.types["market_data_quotes_accepted"] == "counter"
    assert after.types["market_data_cache_write_latency_seconds"] == "histogram"
    assert after.types["market_data_connection_state"] == "gauge"
    assert all(name.startswith(("market_data_", "process_", "python_")) for name in after.names)


async def test_histogram_buckets_are_cumulative_and_end_at_the_count(
    service: Service,
    simulator: AlpacaSimulator,
) -> None:
    await subscribe(service, "AAPL")
    service.stream.latency_sample_interval = 0.0
    for i in range(5):
        await simulator.send_quotes([quote("AAPL", f"10.0{i}", "10.10")])
    await wait_received(service, 5)
    found = await scrape(service.http)
    for name in (
        "market_data_cache_write_latency_seconds",
        "market_data_redis_write_round_trip_seconds",
    ):
        buckets = found.labelled(f"{name}_bucket", "le")
        counts = [buckets[le] for le in sorted(buckets, key=float)]
        assert counts == sorted(counts), name
        assert counts[-1] == found.value(f"{name}_count")
    # One latency sample per frame; the writer's batches include status notices too.
    assert found.value("market_data_cache_write_latency_seconds_count") == 5
    assert found.value("market_data_redis_write_round_trip_seconds_count") >= 5


async def test_cache_hits_and_misses_follow_the_price_reads(
    service: Service,
    simulator: AlpacaSimulator,
) -> None:
    await subscribe(service, "AAPL", "MSFT")
    await simulator.send_quotes([quote("AAPL", "150.00", "150.10")])
    await wait_received(service, 1)
    start = await scrape(service.http)
    assert start.value("market_data_cache_hits_total") == 0
    assert start.value("market_data_cache_misses_total") == 0

    assert (await service.http.get("/api/v1/prices/AAPL")).status_code == 200
    assert (await service.http.get("/api/v1/prices/MSFT")).status_code == 404
    reply = await service.http.get("/api/v1/prices", params={"symbols": "AAPL,MSFT,TSLA"})
    assert reply.status_code == 200
    found = await scrape(service.http)
    assert found.value("market_data_cache_hits_total") == 2
    assert found.value("market_data_cache_misses_total") == 3
    app: Any = service.server.config.app
    assert (app.state.service.prices.hits, app.state.service.prices.misses) == (2, 3)

    # Health probes read the cache too, but they are not price reads.
    assert (await service.http.get("/health")).status_code == 200
    again = await scrape(service.http)
    assert again.value("market_data_cache_hits_total") == 2
    assert again.value("market_data_cache_misses_total") == 3


async def test_reconnects_are_counted_by_cause(
    service: Service,
    simulator: AlpacaSimulator,
) -> None:
    await subscribe(service, "AAPL")
    opened = (await scrape(service.http)).value("market_data_connections_opened_total")
    await simulator.drop_connections()
    await service.wait_connected()
    await simulator.send_error(407)  # "slow client": the stream reconnects at once
    await eventually(
        lambda: stats(service)["connections_opened"] == opened + 2, what="2 reconnects"
    )
    await service.wait_connected()
    found = await scrape(service.http)
    assert found.labelled("market_data_reconnects_total", "cause") == {"closed": 1, "alpaca_407": 1}
    assert found.value("market_data_error_frames_total") == 1
    assert found.value("market_data_connections_opened_total") == opened + 2


async def test_per_symbol_series_follow_the_subscriptions(
    service: Service,
    simulator: AlpacaSimulator,
) -> None:
    await subscribe(service, "AAPL", "MSFT", "GOOGL")
    await simulator.send_quotes([quote("AAPL", "1.00", "1.01")])
    await wait_received(service, 1)
    found = await scrape(service.http)
    assert set(found.labelled("market_data_last_update_age_seconds", "symbol")) == {"AAPL"}
    assert found.value("market_data_symbols_without_quotes") == 2
    reply = await service.http.delete("/api/v1/subscribe/AAPL")
    assert reply.status_code == 200
    found = await scrape(service.http)
    assert found.labelled("market_data_last_update_age_seconds", "symbol") == {}
    assert found.value("market_data_subscribed_symbols") == 2


async def test_openmetrics_is_served_when_asked_for(service: Service) -> None:
    reply = await service.http.get(
        "/metrics", headers={"accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("application/openmetrics-text")
    assert reply.text.endswith("# EOF\n")


async def test_each_app_has_its_own_registry(
    start_service: ServiceFactory, simulator_factory: SimulatorFactory
) -> None:
    first = await start_service()
    # A second simulator: one account holds one connection (406 otherwise).
    other = await simulator_factory()
    second = await start_service(alpaca_data_url=other.url())
    await first.wait_connected()
    await second.wait_connected()
    await subscribe(first, "AAPL")
    one, two = await scrape(first.http), await scrape(second.http)
    assert one.value("market_data_subscribed_symbols") == 1
    assert two.value("market_data_subscribed_symbols") == 0


async def test_scrape_text_is_plain_prometheus(service: Service) -> None:
    reply = await service.http.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(reply.text)}
    for name, family in families.items():
        if name.startswith("market_data_"):
            assert family.documentation, f"{name} has no HELP text"
    assert isinstance(await scrape(service.http), Scrape)


async def test_every_metric_reads_a_number_from_the_typed_stats(service: Service) -> None:
    # A source field renamed or removed in a stage's stats fails here, by name.
    from apps.market_data_service.observability.metrics import COUNTERS, GAUGES

    stats = service.stream.stats()
    for source, name, _ in (*COUNTERS, *GAUGES):
        value = source(stats)
        assert isinstance(value, int | float) and not isinstance(value, bool), name
