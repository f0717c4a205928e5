"""The gap fill in the service: wired from the settings, shown in ``/health`` (never
degrading it) and counted in ``/metrics``; a failing REST side skips fills while the
stream goes on."""

from __future__ import annotations

from apps.simulator import AlpacaSimulator
from tests.apps.market_data_service.observability.scrape import scrape
from tests.fixtures.service import ServiceFactory, local_broker
from tests.helpers import quote


async def test_a_skipped_fill_shows_in_health_and_metrics_and_streaming_goes_on(
    simulator: AlpacaSimulator, start_service: ServiceFactory
) -> None:
    simulator.fail_latest_quotes(503, times=1000)
    service = await start_service(**local_broker(simulator), gap_fill=True, gap_fill_timeout=20)
    await service.wait_connected()
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})
    assert reply.status_code == 201
    # The new subscription's fill meets the failing REST side (the client's retries, 0.5 s
    # then 1 s, end well within the deadline even on a loaded machine).
    body = await service.wait_health(
        lambda b: b["gap_fill"]["skipped"] >= 1, "a skipped fill", within=20
    )
    fill = body["gap_fill"]
    assert fill["enabled"] is True
    assert (fill["last_result"], fill["last_trigger"]) == ("skipped", "subscribe")
    assert fill["last_skipped_reason"] == "rest_unavailable"
    assert "HTTP 503" in fill["last_detail"]
    assert body["status"] == "healthy"  # a skipped fill is shown, never degrading
    metrics = await scrape(service.http)
    assert metrics.value("market_data_gap_fills_total", result="skipped") == 1
    assert metrics.value("market_data_gap_fills_skipped_total", reason="rest_unavailable") == 1
    assert metrics.value("market_data_gap_fills_skipped_total", reason="rate_budget") == 0
    assert metrics.value("market_data_gap_fill_rest_calls_total") == 1

    await simulator.send_quotes([quote("AAPL", "190.00", "190.02")])
    price = await service.get("/api/v1/prices/AAPL")
    assert price["bid"] == "190.00"


async def test_the_fill_writes_through_the_service_and_off_means_off(
    simulator: AlpacaSimulator, start_service: ServiceFactory
) -> None:
    simulator.set_latest_quote("IBM", "150.10", "150.20")
    service = await start_service(**local_broker(simulator))  # on: a REST data URL is set
    await service.wait_connected()
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["IBM"]})
    assert reply.status_code == 201
    body = await service.wait_health(lambda b: b["gap_fill"]["fills"] >= 1, "a fill")
    assert body["gap_fill"]["last_refreshed"] == 1
    assert (await service.get("/api/v1/prices/IBM"))["bid"] == "150.10"
    metrics = await scrape(service.http)
    assert metrics.value("market_data_gap_fill_symbols_refreshed_total") == 1

    await service.stop()  # the simulator takes one connection at a time
    off = await start_service(**local_broker(simulator), gap_fill=False)
    assert off.stream.gap_fill is None
    assert (await off.health())["gap_fill"]["enabled"] is False
    assert "market_data_gap_fills_total" not in (await scrape(off.http)).names
