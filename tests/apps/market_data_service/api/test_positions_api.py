"""Positions end to end: the service (uvicorn in the test loop) reading the simulator's
REST endpoints over real sockets, quotes through the real WebSocket into a real Redis.

Subscriptions follow positions, the real-time P&L matches hand computations to the cent,
an expired cache falls back to the previous close, a failing positions API leaves the
subscriptions alone and degrades /health; ``market-data status`` shows it all."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from apps.market_data_service.cli.demo import demo_positions
from apps.market_data_service.config import SettingsError, load_settings
from apps.simulator import AlpacaSimulator
from apps.simulator.quotes import start_price_cents
from libs.redis_client import RedisClient, RedisConnectionParams
from tests.fixtures.redis import closed_port
from tests.fixtures.service import (
    SIM_SECRET,
    Service,
    ServiceFactory,
    local_broker,
    running_services,
)
from tests.helpers import eventually, quote

PNL = "/api/v1/positions/pnl/realtime"
MARKET_DATA = str(Path(sys.executable).parent / "market-data")
SECRET = SIM_SECRET


@pytest.fixture
async def start_service(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> AsyncIterator[ServiceFactory]:
    """Services that follow the simulator's positions (read every 50 ms), started healthy."""
    async with running_services(
        simulator,
        redis_params,
        connected=True,
        position_sync_interval=0.05,
        **local_broker(simulator),
    ) as start:
        yield start


async def wait_cached(params: RedisConnectionParams, symbol: str, mid: str) -> None:
    client = RedisClient(params=params)
    try:
        deadline = asyncio.get_running_loop().time() + 5
        while True:
            raw = await client.get(f"price:{symbol}")
            if raw is not None and json.loads(raw)["mid"] == mid:
                return
            assert asyncio.get_running_loop().time() < deadline, f"price:{symbol} never {mid}"
            await asyncio.sleep(0.02)
    finally:
        await client.close()


def pos(symbol: str, qty: str, entry: str) -> dict[str, str]:
    return {"symbol": symbol, "qty": qty, "avg_entry_price": entry}


# -- subscriptions follow positions ------------------------------------------------------------


async def test_positions_appear_and_subscriptions_follow(
    service: Service, simulator: AlpacaSimulator
) -> None:
    simulator.set_positions([pos("AAPL", "10", "187.50"), pos("MSFT", "-5", "300")])
    await service.wait_sources({"AAPL": ["positions"], "MSFT": ["positions"]})
    listed = await service.get("/api/v1/subscriptions")
    assert (listed["symbols"], listed["count"]) == (["AAPL", "MSFT"], 2)
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL", "MSFT"}, what="broker subs")
    sync = (await service.get("/health"))["position_sync"]
    assert sync["enabled"] is True and sync["running"] is True
    assert sync["symbols"] == ["AAPL", "MSFT"]
    assert sync["consecutive_failures"] == 0 and sync["last_success_at"] is not None


async def test_a_closed_position_is_dropped_unless_subscribed_by_hand(
    service: Service, simulator: AlpacaSimulator
) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["MSFT"]})
    assert reply.status_code == 201
    simulator.set_positions([pos("AAPL", "1", "1"), pos("MSFT", "1", "1")])
    await service.wait_sources({"AAPL": ["positions"], "MSFT": ["manual", "positions"]})
    simulator.set_positions([])
    await service.wait_sources({"MSFT": ["manual"]})
    await eventually(lambda: simulator.subscribed_quotes == {"MSFT"}, what="AAPL unsubscribed")
    # A hand unsubscribe of a symbol held only by positions names who holds it.
    simulator.set_positions([pos("TSLA", "1", "1")])
    await service.wait_sources({"MSFT": ["manual"], "TSLA": ["positions"]})
    refused = await service.http.delete("/api/v1/subscribe/TSLA")
    assert refused.status_code == 404
    assert "positions" in refused.json()["detail"]


async def test_a_hand_unsubscribe_of_a_symbol_positions_hold_says_it_stays(
    service: Service, simulator: AlpacaSimulator
) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL", "MSFT"]})
    assert reply.status_code == 201
    simulator.set_positions([pos("AAPL", "3", "100")])
    await service.wait_sources({"AAPL": ["manual", "positions"], "MSFT": ["manual"]})
    reply = await service.http.delete("/api/v1/subscribe/aapl")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "message": "Released AAPL (manual); still subscribed: held by positions",
        "remaining_subscriptions": 2,
        "still_held_by": ["positions"],
    }
    # It did stay: at the broker and in the registry, for the position only.
    assert await service.sources() == {"AAPL": ["positions"], "MSFT": ["manual"]}
    assert simulator.subscribed_quotes == {"AAPL", "MSFT"}
    # A symbol no other source holds leaves the broker: the spec's answer, unchanged.
    reply = await service.http.delete("/api/v1/subscribe/MSFT")
    assert reply.json() == {
        "message": "Successfully unsubscribed from MSFT",
        "remaining_subscriptions": 1,
    }
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL"}, what="MSFT unsubscribed")


async def test_positions_api_down_leaves_subscriptions_and_degrades_health(
    service: Service, simulator: AlpacaSimulator
) -> None:
    simulator.set_positions([pos("AAPL", "1", "1")])
    await service.wait_sources({"AAPL": ["positions"]})
    simulator.set_positions([])  # a close the service cannot see while the API is down
    simulator.fail_positions(503, times=10_000, retry_after=0)
    body = await service.wait_health(lambda b: b["status"] == "degraded")
    assert body["reason"].startswith("positions sync failing: GET /v2/positions: HTTP 503")
    assert body["position_sync"]["consecutive_failures"] >= 1
    assert "HTTP 503" in body["position_sync"]["last_error"]
    assert body["websocket_connected"] is True  # only the sync is failing
    assert await service.sources() == {"AAPL": ["positions"]}
    assert simulator.subscribed_quotes == {"AAPL"}

    simulator.rest.clear_failures()
    body = await service.wait_health(lambda b: b["status"] == "healthy")
    assert body["reason"] is None and body["position_sync"]["last_error"] is None
    await service.wait_sources({})


async def test_refused_credentials_on_the_trading_api_show_in_health(
    start_service: ServiceFactory, simulator: AlpacaSimulator
) -> None:
    started = await start_service()
    simulator.fail_positions(401, times=10_000)
    body = await started.wait_health(lambda b: b["status"] == "degraded")
    assert "ALPACA_API_KEY" in body["reason"]
    assert SECRET not in json.dumps(body)


async def test_sync_can_be_turned_off(
    start_service: ServiceFactory, simulator: AlpacaSimulator
) -> None:
    simulator.set_positions([pos("AAPL", "1", "1")])
    off = await start_service(position_sync_enabled=False)
    sync = (await off.get("/health"))["position_sync"]
    assert (sync["enabled"], sync["running"], sync["syncs"]) == (False, False, 0)
    await asyncio.sleep(0.3)  # several sync intervals
    assert await off.sources() == {}
    assert simulator.rest.count("/v2/positions") == 0
    # The P&L endpoint still reads the positions when asked, at most once a second
    # however often it is called (the trading API's rate limit is the account's).
    assert (await off.get(PNL))["totals"]["positions"] == 1
    await asyncio.gather(*(off.get(PNL) for _ in range(10)))
    assert simulator.rest.count("/v2/positions") == 1


# -- real-time P&L ----------------------------------------------------------------------------


async def test_pnl_matches_a_hand_computation_to_the_cent(
    service: Service, simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    simulator.set_positions([pos("AAPL", "7", "100.123"), pos("MSFT", "-5", "300.00")])
    await service.wait_sources({"AAPL": ["positions"], "MSFT": ["positions"]})
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL", "MSFT"}, what="subscribed")
    await simulator.send_quotes(
        [quote("AAPL", "101.00", "101.01"), quote("MSFT", "290.99", "291.00")]
    )
    await wait_cached(redis_params, "AAPL", "101.005")
    await wait_cached(redis_params, "MSFT", "290.995")

    reply = await service.http.get(PNL)
    assert reply.status_code == 200
    body = reply.json()
    aapl, msft = body["positions"]
    # Long 7 @ 100.123 at mid 101.005: value 707.035 -> 707.04 (half even), cost 700.861
    # -> 700.86, P&L 6.174 -> 6.17, 6.174 / 700.861 = 0.8809 %.
    assert aapl == {
        **aapl,
        "symbol": "AAPL",
        "side": "long",
        "qty": "7",
        "avg_entry_price": "100.123",
        "current_price": "101.005",
        "price_source": "realtime",
        "cost_basis": "700.86",
        "market_value": "707.04",
        "unrealized_pl": "6.17",
        "unrealized_pl_pct": "0.8809",
    }
    # Short 5 @ 300.00 at mid 290.995: (300.00 - 290.995) * 5 = 45.025 -> 45.02.
    assert msft == {
        **msft,
        "symbol": "MSFT",
        "side": "short",
        "qty": "-5",
        "avg_entry_price": "300.00",
        "current_price": "290.995",
        "price_source": "realtime",
        "cost_basis": "-1500.00",
        "market_value": "-1454.98",
        "unrealized_pl": "45.02",
        "unrealized_pl_pct": "3.0017",
    }
    assert 0 <= aapl["price_age_seconds"] < 5
    assert body["totals"] == {
        "positions": 2,
        "priced_positions": 2,
        "total_cost_basis": "-799.14",
        "total_market_value": "-747.94",
        "total_unrealized_pl": "51.20",
        "total_unrealized_pl_pct": "2.3263",
    }
    assert body["cache_error"] is None and body["closing_prices_error"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", body["as_of"])


async def test_pnl_numbers_travel_as_exact_strings_never_floats(
    service: Service, simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    simulator.set_positions([pos("AAPL", "3", "0.1")])
    await service.wait_sources({"AAPL": ["positions"]})
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL"}, what="subscribed")
    await simulator.send_quotes([quote("AAPL", "0.20", "0.21")])
    await wait_cached(redis_params, "AAPL", "0.205")
    text = (await service.http.get(PNL)).text
    # 3 * (0.205 - 0.1) = 0.315 -> 0.32 (half even); a float path would give 0.31499999...
    assert '"unrealized_pl":"0.32"' in text
    body = json.loads(text, parse_float=Decimal)
    row = body["positions"][0]
    # The only JSON number with a fraction is an age in seconds, not an amount.
    assert isinstance(row.pop("price_age_seconds"), Decimal)
    for name in ("qty", "avg_entry_price", "current_price", "cost_basis", "market_value",
                 "unrealized_pl", "unrealized_pl_pct"):  # fmt: skip
        assert isinstance(row[name], str), name
        Decimal(row[name])
    for value in body["totals"].values():
        assert isinstance(value, str | int)


async def test_expired_cache_falls_back_to_the_closing_price_labelled(
    service: Service, simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    simulator.set_positions([pos("AAPL", "10", "180.00"), pos("MSFT", "-4", "310.00")])
    simulator.rest.set_previous_close("AAPL", "185.255")
    simulator.rest.set_previous_close("MSFT", "305.10")
    await service.wait_sources({"AAPL": ["positions"], "MSFT": ["positions"]})
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL", "MSFT"}, what="subscribed")
    await simulator.send_quotes([quote("AAPL", "190.00", "190.00")])
    await wait_cached(redis_params, "AAPL", "190.00")
    body = await service.get(PNL)
    sources = {row["symbol"]: row["price_source"] for row in body["positions"]}
    assert sources == {"AAPL": "realtime", "MSFT": "closing"}  # MSFT never quoted

    client = RedisClient(params=redis_params)
    try:
        await client.delete("price:AAPL")  # as if its TTL ran out
    finally:
        await client.close()
    body = await service.get(PNL)
    aapl, msft = body["positions"]
    assert (aapl["price_source"], aapl["current_price"]) == ("closing", "185.255")
    assert aapl["price_age_seconds"] is None
    assert aapl["price_timestamp"].endswith("T04:00:00Z")
    # (185.255 - 180.00) * 10 = 52.55; short: (310.00 - 305.10) * 4 = 19.60
    assert aapl["unrealized_pl"] == "52.55"
    assert (msft["price_source"], msft["unrealized_pl"]) == ("closing", "19.60")
    assert body["totals"]["total_unrealized_pl"] == "72.15"


async def test_short_cache_ttl_falls_back_to_the_closing_price(
    start_service: ServiceFactory, simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    started = await start_service(price_cache_ttl=1)
    simulator.set_positions([pos("AAPL", "2", "100")])
    simulator.rest.set_previous_close("AAPL", "99.50")
    await started.wait_sources({"AAPL": ["positions"]})
    await eventually(lambda: simulator.subscribed_quotes == {"AAPL"}, what="subscribed")
    await simulator.send_quotes([quote("AAPL", "101.00", "101.00")])
    await wait_cached(redis_params, "AAPL", "101.00")
    assert (await started.get(PNL))["positions"][0]["price_source"] == "realtime"
    deadline = asyncio.get_running_loop().time() + 5
    while (row := (await started.get(PNL))["positions"][0])["price_source"] == "realtime":
        assert asyncio.get_running_loop().time() < deadline, "the cached price never expired"
        await asyncio.sleep(0.1)
    assert (row["price_source"], row["current_price"], row["unrealized_pl"]) == (
        "closing",
        "99.50",
        "-1.00",
    )


async def test_no_price_at_all_is_unavailable_and_left_out_of_the_totals(
    service: Service, simulator: AlpacaSimulator
) -> None:
    simulator.set_positions([pos("AAPL", "1", "100"), pos("MSFT", "1", "200")])
    simulator.fail_rest("snapshots", 503, times=3, retry_after=0)
    body = await service.get(PNL)
    assert [row["price_source"] for row in body["positions"]] == ["unavailable", "unavailable"]
    assert body["positions"][0]["unrealized_pl"] is None
    assert "HTTP 503" in body["closing_prices_error"]
    assert body["totals"]["priced_positions"] == 0
    assert body["totals"]["total_unrealized_pl"] == "0.00"
    assert body["totals"]["total_unrealized_pl_pct"] is None


async def test_previous_closes_are_not_asked_for_on_every_call(
    service: Service, simulator: AlpacaSimulator
) -> None:
    simulator.set_positions([pos("AAPL", "1", "100")])
    for _ in range(3):
        assert (await service.get(PNL))["positions"][0]["price_source"] == "closing"
    assert simulator.rest.count("/v2/stocks/snapshots") == 1


async def test_no_positions_is_an_empty_report(service: Service) -> None:
    body = await service.get(PNL)
    assert body["positions"] == []
    assert body["totals"]["positions"] == 0


async def test_positions_api_errors_are_502_naming_them_never_a_secret(
    service: Service, simulator: AlpacaSimulator
) -> None:
    simulator.fail_positions(401, times=10_000)
    reply = await service.http.get(PNL)
    assert reply.status_code == 502
    assert "GET /v2/positions" in reply.json()["detail"]
    assert "HTTP 401" in reply.json()["detail"]
    assert SECRET not in reply.text
    simulator.rest.clear_failures()
    # Persistent, and past the 1 s window in which the endpoint reuses a recent read: the
    # background position sync may have read successfully right after clear_failures().
    simulator.fail_positions(503, times=10_000, retry_after=0)
    await asyncio.sleep(1.1)
    reply = await service.http.get(PNL)
    assert reply.status_code == 502
    assert "HTTP 503" in reply.text


async def test_pnl_is_in_the_openapi_schema(service: Service) -> None:
    schema = await service.get("/openapi.json")
    assert PNL in schema["paths"]


def test_response_models_name_exactly_the_library_records_fields() -> None:
    # The bodies are filled from the records by attribute name (model_validate with
    # from_attributes): a field renamed on one side only would silently fall back to a
    # default or fail at request time, so the two lists are held together here.
    import dataclasses

    from apps.market_data_service.api import schemas
    from libs.market_data.pnl import PnLTotals, PositionPnL, RealtimePnL
    from libs.market_data.subscriptions.positions import PositionSyncStatus

    def names(record: type) -> set[str]:
        properties = {n for n, v in vars(record).items() if isinstance(v, property)}
        return {f.name for f in dataclasses.fields(record)} | properties

    assert set(schemas.PositionPnLItem.model_fields) == names(PositionPnL)
    assert set(schemas.RealtimePnLTotals.model_fields) == names(PnLTotals)
    assert set(schemas.RealtimePnLResponse.model_fields) == names(RealtimePnL) - {"report"}
    assert set(schemas.PositionSyncHealth.model_fields) == (
        names(PositionSyncStatus) - {"failing"} | {"enabled"}
    )


# -- market-data status ------------------------------------------------------------------------


async def run_status(api: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        MARKET_DATA,
        "status",
        "--api",
        api,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"},
    )
    async with asyncio.timeout(30):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_status_shows_health_subscriptions_and_pnl(
    service: Service, simulator: AlpacaSimulator, redis_params: RedisConnectionParams
) -> None:
    simulator.set_positions([pos("AAPL", "7", "100.123"), pos("MSFT", "-5", "300.00")])
    await service.http.post("/api/v1/subscribe", json={"symbols": ["MSFT", "NVDA"]})
    await service.wait_sources(
        {"AAPL": ["positions"], "MSFT": ["manual", "positions"], "NVDA": ["manual"]}
    )
    await eventually(lambda: len(simulator.subscribed_quotes) == 3, what="subscribed")
    await simulator.send_quotes([quote("AAPL", "101.00", "101.01")])
    await wait_cached(redis_params, "AAPL", "101.005")

    code, out, err = await run_status(service.url)
    assert code == 0, out + err
    assert "Health" in out and "healthy" in out
    assert re.search(r"MSFT\s*│\s*manual, positions", out), out
    assert re.search(r"NVDA\s*│\s*manual", out), out
    aapl = next(line for line in out.splitlines() if "AAPL" in line and "long" in line)
    assert "realtime" in aapl and "707.04" in aapl and "6.17" in aapl
    msft = next(line for line in out.splitlines() if "MSFT" in line and "short" in line)
    assert "closing" in msft and "-5" in msft
    assert "TOTAL" in out
    assert "Traceback" not in out + err


async def test_status_of_a_degraded_service_exits_1(
    service: Service, simulator: AlpacaSimulator
) -> None:
    simulator.fail_positions(503, times=10_000, retry_after=0)
    await service.wait_health(lambda b: b["status"] == "degraded")
    code, out, _ = await run_status(service.url)
    assert code == 1
    assert "degraded" in out and "positions sync failing" in out
    assert "real-time P&L unavailable: HTTP 502" in out


async def test_status_of_an_unreachable_service_exits_1() -> None:
    api = f"http://127.0.0.1:{closed_port()}"
    code, _, err = await run_status(api)
    assert code == 1
    assert f"cannot reach the service at {api}" in err
    assert "Traceback" not in err


# -- settings -------------------------------------------------------------------------------------


def test_position_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALPACA_DATA_URL", "ALPACA_BASE_URL", "POSITION_SYNC_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALPACA_API_KEY", "k")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "s")
    settings = load_settings(_env_file=None)
    assert settings.position_sync_interval == 30.0
    assert settings.alpaca_rest_timeout == 10.0
    assert settings.position_sync_on is True  # Alpaca's own stream: follow its positions

    monkeypatch.setenv("ALPACA_DATA_URL", "ws://127.0.0.1:8765/v2/iex")
    assert load_settings(_env_file=None).position_sync_on is False
    monkeypatch.setenv("ALPACA_BASE_URL", "http://127.0.0.1:8765")
    assert load_settings(_env_file=None).position_sync_on is True
    monkeypatch.setenv("POSITION_SYNC_ENABLED", "false")
    monkeypatch.setenv("POSITION_SYNC_INTERVAL", "0.5")
    settings = load_settings(_env_file=None)
    assert (settings.position_sync_on, settings.position_sync_interval) == (False, 0.5)


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "soon"])
def test_a_bad_sync_interval_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("ALPACA_API_KEY", "k")
    monkeypatch.setenv("ALPACA_SECRET_KEY", "s")
    monkeypatch.setenv("POSITION_SYNC_INTERVAL", value)
    with pytest.raises(SettingsError, match="POSITION_SYNC_INTERVAL"):
        load_settings(_env_file=None)


# -- the demo ---------------------------------------------------------------------------------


async def test_demo_shows_pnl_moving_with_the_quotes(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        MARKET_DATA,
        "demo",
        "--duration",
        "4",
        "--port",
        str(closed_port()),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"},
    )
    async with asyncio.timeout(40):
        out, _ = await proc.communicate()
    output = out.decode()
    assert proc.returncode == 0, output
    totals = re.findall(r"P&L (-?\d+\.\d\d)\b", output)
    assert len(set(totals)) >= 2, f"the P&L total should move with the quotes:\n{output}"
    assert "Traceback" not in output


def test_demo_positions_are_long_and_short_near_the_simulated_prices() -> None:
    positions = {p["symbol"]: p for p in demo_positions()}
    assert {s: p["qty"] for s, p in positions.items()} == {
        "AAPL": "100",
        "MSFT": "-50",
        "GOOGL": "25",
    }
    for symbol, position in positions.items():
        start = Decimal(start_price_cents(symbol)) / 100
        assert abs(Decimal(position["avg_entry_price"]) / start - 1) <= Decimal("0.03")
