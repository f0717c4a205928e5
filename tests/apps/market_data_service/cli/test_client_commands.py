"""The client commands (``health``, ``subscriptions``, ``subscribe``, ``unsubscribe``,
``status``) run as real processes against a service served in the test, on the simulator
and a real Redis: one line per failure, exit codes, the API key from the service's own
settings sources, batches of the API's limit, readable tables."""

from __future__ import annotations

import json
import re
from pathlib import Path

from apps.market_data_service.api.schemas import MAX_SYMBOLS_PER_REQUEST
from apps.market_data_service.cli.client import Reply, ServiceClient, problem_line
from apps.simulator import AlpacaSimulator
from libs.redis_client import RedisConnectionParams
from tests.apps.market_data_service.cli.running import clean_environment, market_data
from tests.fixtures.service import Service, ServiceFactory, local_broker, running_services
from tests.fixtures.simulator import SimulatorFactory
from tests.helpers import quote

API_KEY = "cli-test-key-0123456789abcdef"
WRONG_KEY = "not-the-key-9876543210fedcba"


def tickers(n: int, prefix: str = "S") -> list[str]:
    """``n`` valid distinct tickers: S0001, S0002, ..."""
    return [f"{prefix}{i:04d}" for i in range(1, n + 1)]


# -- 1. a bad request is one line ------------------------------------------------------------


async def test_a_bad_symbol_is_one_line_and_exit_2(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    service = await start_service()
    ran = await market_data("subscribe", "A*", "--api", service.url, cwd=tmp_path)
    assert ran.code == 2, ran.all
    assert ran.out == ""
    assert len(ran.err_lines) == 1, ran.err
    assert "'A*'" in ran.err and "market-data:" in ran.err

    # Checked before anything is sent: a good symbol next to a bad one is not subscribed.
    ran = await market_data("subscribe", "AAPL", "bad symbol!", "--api", service.url, cwd=tmp_path)
    assert (ran.code, len(ran.err_lines)) == (2, 1), ran.all
    assert await service.sources() == {}

    # All are checked before the first batch: a bad one in the second batch stops the first.
    symbols = tickers(MAX_SYMBOLS_PER_REQUEST + 50)
    symbols[MAX_SYMBOLS_PER_REQUEST + 10] = "NOT-A-TICKER"
    ran = await market_data("subscribe", *symbols, "--api", service.url, cwd=tmp_path)
    assert (ran.code, len(ran.err_lines)) == (2, 1), ran.all
    assert "'NOT-A-TICKER'" in ran.err
    assert await service.sources() == {}

    ran = await market_data("unsubscribe", "A A", "--api", service.url, cwd=tmp_path)
    assert (ran.code, len(ran.err_lines), ran.out) == (2, 1, ""), ran.all


async def test_a_refusal_of_the_service_is_one_line_and_exit_1(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    service = await start_service()
    ran = await market_data("unsubscribe", "NVDA", "--api", service.url, cwd=tmp_path)
    assert ran.code == 1, ran.all
    assert ran.out == ""
    assert ran.err_lines == [ran.err.strip()] and "HTTP 404" in ran.err and "NVDA" in ran.err


async def test_the_services_own_input_errors_read_as_one_line(
    start_service: ServiceFactory,
) -> None:
    """The service's real 422 bodies (whatever their shape, before or after problem
    details) become one line naming the problem."""
    service = await start_service()
    bad = await service.http.post("/api/v1/subscribe", json={"symbols": ["A*"]})
    assert bad.status_code == 422
    line = problem_line(bad.status_code, bad.json())
    assert "\n" not in line and line.startswith("HTTP 422: ") and "'A*'" in line
    # An input error, whoever found it: the same exit code as a local check (2).
    client = ServiceClient(service.url, None)
    try:
        error = client.error(Reply(bad.status_code, bad.json()))
        assert (str(error), error.exit_code) == (line, 2)
        refused = client.error(
            Reply(404, (await service.http.delete("/api/v1/subscribe/X")).json())
        )
        assert refused.exit_code == 1
    finally:
        client.close()

    too_many = tickers(MAX_SYMBOLS_PER_REQUEST + 1)
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": too_many})
    assert reply.status_code == 422
    line = problem_line(reply.status_code, reply.json())
    assert "\n" not in line and str(MAX_SYMBOLS_PER_REQUEST) in line

    two_bad = await service.http.post("/api/v1/subscribe", json={"symbols": ["A*", "?"], "x": 1})
    line = problem_line(two_bad.status_code, two_bad.json())
    assert "\n" not in line and "'A*'" in line, line


# -- 2. the API key from the service's settings sources ---------------------------------------


async def test_the_key_is_read_from_dotenv_in_the_working_directory(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    service = await start_service(market_data_api_key=API_KEY)
    await service.http.post(
        "/api/v1/subscribe", json={"symbols": ["AAPL"]}, headers={"X-API-Key": API_KEY}
    )
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text(f"ALPACA_API_KEY=x\nMARKET_DATA_API_KEY={API_KEY}\n")

    ran = await market_data("subscriptions", "--api", service.url, cwd=project)
    assert ran.code == 0, ran.all
    assert re.search(r"AAPL\s*│\s*manual", ran.out), ran.out
    assert API_KEY not in ran.all

    # The flag wins, and a wrong key is one clear line that names where it came from.
    ran = await market_data(
        "subscriptions", "--api", service.url, "--api-key", WRONG_KEY, cwd=project
    )
    assert ran.code == 1, ran.all
    assert ran.out == ""
    assert len(ran.err_lines) == 1, ran.err
    assert "HTTP 401" in ran.err and "invalid API key" in ran.err and "--api-key" in ran.err
    assert WRONG_KEY not in ran.all and API_KEY not in ran.all

    # No key anywhere: the line says where to put one.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = await market_data("subscriptions", "--api", service.url, cwd=elsewhere)
    assert ran.code == 1 and len(ran.err_lines) == 1, ran.all
    assert "missing API key" in ran.err and "MARKET_DATA_API_KEY" in ran.err

    # Every client command reads it: subscribe, unsubscribe, health.
    for args in (["subscribe", "msft"], ["unsubscribe", "MSFT"], ["health"]):
        ran = await market_data(*args, "--api", service.url, cwd=project)
        assert ran.code == 0, (args, ran.all)
        assert API_KEY not in ran.all


async def test_the_key_file_setting_and_the_flag(
    start_service: ServiceFactory, tmp_path: Path
) -> None:
    service = await start_service(market_data_api_key=API_KEY)
    key_file = tmp_path / "api-key"
    key_file.write_text(API_KEY + "\n")
    env = clean_environment()

    ran = await market_data(
        "subscriptions",
        "--api",
        service.url,
        cwd=tmp_path,
        env={**env, "MARKET_DATA_API_KEY_FILE": str(key_file)},
    )
    assert ran.code == 0, ran.all
    assert ran.out.strip() == "no subscriptions"

    missing = tmp_path / "no-such-file"
    ran = await market_data(
        "subscriptions",
        "--api",
        service.url,
        cwd=tmp_path,
        env={**env, "MARKET_DATA_API_KEY_FILE": str(missing)},
    )
    assert ran.code == 2 and len(ran.err_lines) == 1, ran.all
    assert "MARKET_DATA_API_KEY_FILE" in ran.err and "cannot be read" in ran.err

    # A wrong key in the environment, the right one on the command line: the flag wins.
    ran = await market_data(
        "subscriptions",
        "--api",
        service.url,
        "--api-key",
        API_KEY,
        cwd=tmp_path,
        env={**env, "MARKET_DATA_API_KEY": WRONG_KEY},
    )
    assert ran.code == 0, ran.all
    ran = await market_data(
        "subscriptions",
        "--api",
        service.url,
        cwd=tmp_path,
        env={**env, "MARKET_DATA_API_KEY": WRONG_KEY},
    )
    assert ran.code == 1 and "(the key from MARKET_DATA_API_KEY)" in ran.err, ran.all
    assert WRONG_KEY not in ran.all


# -- 3. status fails when a call fails ------------------------------------------------------------


async def test_status_exits_1_when_its_calls_get_401(
    start_service: ServiceFactory, simulator: AlpacaSimulator, tmp_path: Path
) -> None:
    service = await start_service(market_data_api_key=API_KEY, **local_broker(simulator))
    await service.wait_connected()

    ran = await market_data("status", "--api", service.url, cwd=tmp_path)
    assert ran.code == 1, ran.all
    assert "healthy" in ran.out  # /health needs no key: the service itself is fine
    assert "subscriptions: HTTP 401" in ran.out
    assert "real-time P&L unavailable: HTTP 401" in ran.out

    (tmp_path / ".env").write_text(f"MARKET_DATA_API_KEY={API_KEY}\n")
    ran = await market_data("status", "--api", service.url, cwd=tmp_path)
    assert ran.code == 0, ran.all
    assert "HTTP 401" not in ran.all and API_KEY not in ran.all


# -- 4. subscribe in batches ----------------------------------------------------------------------


async def test_subscribe_sends_batches_of_the_api_limit(
    start_service: ServiceFactory, simulator: AlpacaSimulator, tmp_path: Path
) -> None:
    service = await start_service()
    symbols = tickers(2 * MAX_SYMBOLS_PER_REQUEST + 50)
    ran = await market_data("subscribe", *symbols, "--api", service.url, cwd=tmp_path)
    assert ran.code == 0, ran.all
    assert ran.out.strip() == (
        f"subscribed {len(symbols):,} symbols in 3 requests of at most "
        f"{MAX_SYMBOLS_PER_REQUEST} ({len(symbols):,} subscriptions in total)"
    )
    assert ran.err == ""
    assert sorted(await service.sources()) == symbols
    assert simulator.subscribed_quotes == frozenset(symbols)


async def test_a_refused_batch_names_its_symbols_and_exits_1(
    simulator_factory: SimulatorFactory, redis_params: RedisConnectionParams, tmp_path: Path
) -> None:
    # The broker takes 150 symbols: the first batch (100) passes, the second (100 more)
    # is refused whole, the third (50) fits again.
    sim = await simulator_factory(symbol_limit=150)
    async with running_services(sim, redis_params, connected=True) as start:
        service = await start()
        symbols = tickers(250)
        ran = await market_data("subscribe", *symbols, "--api", service.url, cwd=tmp_path)
        assert ran.code == 1, ran.all
        assert ran.out.strip() == (
            "subscribed 150 of 250 symbols in 3 requests of at most 100 (150 subscriptions "
            "in total)"
        )
        assert len(ran.err_lines) == 1, ran.err
        refused = symbols[100:200]
        assert f"refused 100 of 250 symbols ({', '.join(refused[:10])} and 90 more)" in ran.err
        assert "HTTP 409" in ran.err and "symbol limit" in ran.err
        assert sorted(await service.sources()) == symbols[:100] + symbols[200:]

        ran = await market_data(
            "subscribe", *refused[:3], "--json", "--api", service.url, cwd=tmp_path
        )
        assert ran.code == 1
        body = json.loads(ran.out)
        assert body["refused_symbols"] == refused[:3] and body["subscribed_symbols"] == []


# -- 5. tables ------------------------------------------------------------------------------------


async def test_health_and_subscriptions_are_tables_and_json_on_request(
    service: Service, tmp_path: Path
) -> None:
    url = service.url
    assert (await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})).is_success
    raw_subscriptions = await service.get("/api/v1/subscriptions")
    ran = await market_data("health", "--api", url, cwd=tmp_path)
    assert ran.code == 0, ran.all
    assert re.search(r"status\s*│\s*healthy", ran.out), ran.out
    assert re.search(r"websocket connected\s*│\s*yes", ran.out), ran.out
    assert re.search(r"redis connected\s*│\s*yes", ran.out), ran.out
    assert "True" not in ran.out and "False" not in ran.out

    ran = await market_data("health", "--json", "--api", url, cwd=tmp_path)
    assert ran.code == 0
    assert json.loads(ran.out)["status"] == "healthy"

    ran = await market_data("subscriptions", "--api", url, cwd=tmp_path)
    assert ran.code == 0
    assert "Subscriptions (1)" in ran.out
    assert re.search(r"AAPL\s*│\s*manual", ran.out), ran.out

    ran = await market_data("subscriptions", "--json", "--api", url, cwd=tmp_path)
    assert json.loads(ran.out) == raw_subscriptions


async def test_status_summarises_a_thousand_subscriptions(
    start_service: ServiceFactory, simulator: AlpacaSimulator, tmp_path: Path
) -> None:
    service = await start_service(**local_broker(simulator))
    await service.wait_connected()
    symbols = tickers(1000)
    ran = await market_data("subscribe", *symbols, "--api", service.url, cwd=tmp_path)
    assert ran.code == 0, ran.all
    assert "subscribed 1,000 symbols in 10 requests" in ran.out
    quoted = symbols[:990]  # ten are never quoted: they are the stalest
    await simulator.send_quotes([quote(s, "10.00", "10.02") for s in quoted])
    await service.wait_health(
        lambda b: sum(age is not None for age in b["last_update_age_seconds"].values()) == 990,
        "990 symbols quoted",
    )

    ran = await market_data("status", "--api", service.url, cwd=tmp_path)
    assert ran.code == 0, ran.all
    assert len(ran.out.splitlines()) < 60, ran.out
    assert "Subscriptions (1,000): 990 quoted, 10 without a quote yet" in ran.out
    assert "manual 1,000" in ran.out
    assert "(--all lists every one)" in ran.out
    assert "Stalest 5 of 1,000" in ran.out
    assert "no open positions" in ran.out
    never = symbols[990:995]
    assert all(re.search(rf"{s}\s*│\s*manual\s*│\s*none yet", ran.out) for s in never), ran.out
    assert symbols[0] not in ran.out

    ran = await market_data("status", "--all", "--api", service.url, cwd=tmp_path)
    assert ran.code == 0, ran.err
    listed = set(re.findall(r"\bS\d{4}\b", ran.out))
    assert listed == set(symbols)
    assert re.search(rf"{symbols[0]}\s*│\s*manual\s*│\s*\d+\.\ds ago", ran.out), ran.out
