"""Logging: one event per line, JSON when asked, secrets masked; and the events that
matter (reconnects, error frames, state changes) are each logged once with their cause,
in-process and from a real ``market-data serve`` process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from apps.market_data_service.config import SettingsError, load_settings
from apps.market_data_service.observability.logs import (
    ACCESS_LOGGER,
    HTTP_CLIENT_LOGGERS,
    MASK,
    PROBE_PATHS,
    configure_logging,
    configure_logging_once,
    env_log_format,
    settings_secrets,
)
from apps.simulator import AlpacaSimulator
from libs.redis_client import RedisConnectionParams
from tests.fixtures.redis import RedisFactory
from tests.fixtures.service import (
    SIM_KEY,
    SIM_SECRET,
    Service,
    ServiceFactory,
    free_port,
    local_broker,
)
from tests.fixtures.simulator import SimulatorFactory
from tests.helpers import UVICORN_LOGGERS, CapturedLogs, capture_logs, eventually

ROOT = Path(__file__).resolve().parents[4]
SECRET = "very-secret-value-42"


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """The root logger sends to a string for the test; everything restored afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    buffer = io.StringIO()
    yield buffer
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(autouse=True)
def restore_quieted_loggers() -> Iterator[None]:
    """A service started here quiets httpx and uvicorn's access log: put them back."""
    loggers = [logging.getLogger(name) for name in (*HTTP_CLIENT_LOGGERS, ACCESS_LOGGER)]
    saved = [(logger, logger.level, list(logger.filters)) for logger in loggers]
    yield
    for logger, level, filters in saved:
        logger.setLevel(level)
        logger.filters[:] = filters


def lines(buffer: io.StringIO) -> list[str]:
    return buffer.getvalue().splitlines()


def test_json_lines_carry_the_event_its_fields_and_no_secret(log_output: io.StringIO) -> None:
    configure_logging("INFO", "json", secrets=[SECRET, 'quote"and\\slash'], stream=log_output)
    log = logging.getLogger("tests.logging")
    log.debug("not shown at INFO")
    log.warning("stream lost (%s)", "closed", extra={"cause": "closed", "attempt": 2})
    log.info("oops, the secret: %s and %s", SECRET, 'quote"and\\slash')
    try:
        raise RuntimeError(f"failed with {SECRET}\nsecond line")
    except RuntimeError:
        log.exception("it broke", extra={"detail": {"token": SECRET}})
    found = [json.loads(line) for line in lines(log_output)]
    assert len(found) == 3
    first = found[0]
    assert list(first)[:4] == ["ts", "level", "logger", "message"]
    assert first["level"] == "WARNING"
    assert first["logger"] == "tests.logging"
    assert first["message"] == "stream lost (closed)"
    assert (first["cause"], first["attempt"]) == ("closed", 2)
    assert first["ts"].endswith("Z")
    assert found[1]["message"] == f"oops, the secret: {MASK} and {MASK}"
    assert "Traceback" in found[2]["exception"]
    assert "second line" in found[2]["exception"]
    assert found[2]["detail"] == str({"token": MASK})
    text = log_output.getvalue()
    assert SECRET not in text
    assert "slash" not in text  # the secret with a quote and a backslash, even escaped


def test_text_lines_stay_one_per_event(log_output: io.StringIO) -> None:
    configure_logging("DEBUG", "text", secrets=[SECRET], stream=log_output)
    log = logging.getLogger("tests.logging")
    log.debug("multi\nline message", extra={"cause": "alpaca 406", "n": 3})
    try:
        raise ValueError("bad")
    except ValueError:
        log.error("with a traceback %s", SECRET, exc_info=True)
    got = lines(log_output)
    assert len(got) == 2
    assert " DEBUG   tests.logging: multi\\nline message" in got[0]
    assert got[0].endswith('cause="alpaca 406" n=3')
    assert "Traceback" in got[1]
    assert SECRET not in got[1]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_floats_are_rounded_in_fields_and_message_arguments(
    log_output: io.StringIO, caplog: pytest.LogCaptureFixture, log_format: Any
) -> None:
    configure_logging("INFO", log_format, stream=log_output)
    log = logging.getLogger("tests.logging")
    delay, latency = 4.91759836753689, 0.000123456789
    log.warning(
        "retry in %s, latency %r, shown %.4f, %d%% done, price %s, n=%s",
        *(delay, latency, 2.34567, 50, Decimal("433.27512"), 3),
        extra={
            "delay": delay,
            "latency": latency,
            "at": 1763000000.123456,
            "attempt": 2,
            "price": Decimal("433.27512"),
            "zero": 0.0,
        },
    )
    log.info("%(delay)s then %(delay).1f", {"delay": delay})
    first, second = lines(log_output)
    message = "retry in 4.918, latency 0.000123, shown 2.3457, 50% done, price 433.27512, n=3"
    if log_format == "json":
        event = json.loads(first)
        assert event["message"] == message
        fields = {key: event[key] for key in ("delay", "latency", "at", "attempt", "price", "zero")}
        assert fields == {
            "delay": 4.918,
            "latency": 0.000123,
            "at": 1763000000.123,
            "attempt": 2,
            "price": "433.27512",  # exact: a Decimal is never rounded
            "zero": 0.0,
        }
        assert json.loads(second)["message"] == "4.918 then 4.9"
    else:
        assert first.endswith(
            f"{message} delay=4.918 latency=0.000123 at=1763000000.123 attempt=2 "
            "price=433.27512 zero=0.0"
        )
        assert second.endswith("tests.logging: 4.918 then 4.9")
    assert "917598" not in log_output.getvalue()
    assert "456789" not in log_output.getvalue()
    # Only the printed form: other handlers get the record as it was logged.
    assert str(delay) in caplog.records[0].getMessage()
    assert caplog.records[0].__dict__["delay"] == delay


async def test_a_websocket_connection_is_logged_as_its_peer_not_an_object_repr(
    log_output: io.StringIO, simulator: AlpacaSimulator
) -> None:
    # websockets puts the connection on its records (extra "websocket"), and the
    # simulator on its own: "<websockets...ServerConnection object at 0x...>" before.
    configure_logging("DEBUG", "text", stream=log_output)
    async with connect(simulator.url()) as ws:
        await ws.recv()  # the greeting
        host, port = ws.local_address[:2]  # the simulator's peer
        client_id = ws.id.hex[:8]
    await eventually(lambda: "simulator session closed" in log_output.getvalue())
    async with httpx.AsyncClient() as http:  # a REST request: websockets answers it too
        await http.get(f"{simulator.http_url()}/v2/positions")
    await eventually(lambda: "HTTP response sent" in log_output.getvalue())
    about_sockets = [line for line in lines(log_output) if "websocket=" in line]
    assert about_sockets
    assert not [line for line in about_sockets if "object at 0x" in line], about_sockets
    opened = [line for line in lines(log_output) if "simulator session opened" in line]
    assert len(opened) == 1
    assert f'websocket="{host}:{port} (' in opened[0]
    # The websockets server logs under the simulator's logger; the REST answer included.
    rest = [line for line in about_sockets if "HTTP response sent (401 Unauthorized)" in line]
    assert len(rest) == 1
    assert 'websocket="127.0.0.1:' in rest[0]
    client_side = [line for line in about_sockets if "websockets.client" in line]
    assert client_side
    assert all(
        f'websocket="127.0.0.1:{simulator.port} ({client_id})"' in line for line in client_side
    )


def test_configuring_again_replaces_only_its_own_handler(log_output: io.StringIO) -> None:
    root = logging.getLogger()
    others = list(root.handlers)
    first = configure_logging("INFO", "text", stream=log_output)
    second = configure_logging("WARNING", "json", stream=log_output)
    assert first not in root.handlers
    assert second in root.handlers
    assert all(handler in root.handlers for handler in others)
    assert root.level == logging.WARNING
    with pytest.raises(ValueError, match="text, json"):
        configure_logging("INFO", "yaml", stream=log_output)  # type: ignore[arg-type]


def test_the_app_leaves_a_host_s_logging_alone(log_output: io.StringIO) -> None:
    # pytest has its own handlers on the root logger: a host that configured logging.
    assert logging.getLogger().handlers
    assert configure_logging_once("DEBUG", "json") is False


def test_every_secret_setting_is_masked() -> None:
    settings = load_settings(
        alpaca_api_key="key-12345",
        alpaca_secret_key="secret-12345",
        redis_password="redis-12345",
        _env_file=None,
    )
    assert set(settings_secrets(settings)) >= {"key-12345", "secret-12345", "redis-12345"}


def test_log_format_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"alpaca_api_key": "k" * 8, "alpaca_secret_key": "s" * 8, "_env_file": None}
    assert load_settings(**base).log_format == "text"
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    assert load_settings(**base).log_format == "json"
    assert env_log_format() == "json"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(SettingsError, match="LOG_FORMAT"):
        load_settings(**base)
    assert env_log_format() == "text"


# -- the events that matter, once each -----------------------------------------------------


async def test_reconnects_and_error_frames_are_logged_once_with_their_cause(
    service: Service, simulator: AlpacaSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.clear()
    await simulator.send_error(406)  # unsolicited, not fatal: logged, the session stays
    await simulator.drop_connections()
    await service.wait_connected()
    records = [r for r in caplog.records if r.name.startswith("libs.market_data")]
    errors = [r for r in records if "error frame" in r.getMessage()]
    assert len(errors) == 1
    assert "406" in errors[0].getMessage()
    lost = [r for r in records if "reconnect attempt" in r.getMessage()]
    assert len(lost) == 1
    assert lost[0].__dict__["cause"] == "closed"
    connected = [r for r in records if "stream connected" in r.getMessage()]
    assert len(connected) == 1
    assert SIM_SECRET not in caplog.text


async def test_a_refused_subscribe_is_logged_once(
    service: Service, simulator: AlpacaSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.clear()
    simulator.reject_next_subscribe(405)
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})
    assert reply.status_code == 409
    refused = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1
    assert "405" in refused[0].getMessage()


# -- uvicorn's own loggers ------------------------------------------------------------------

API_KEY = "logging-api-key-5e1d9b3a7c2f4086"


async def test_uvicorn_s_loggers_never_carry_a_secret(
    start_service: ServiceFactory, simulator: AlpacaSimulator
) -> None:
    # uvicorn's loggers need not propagate to the root logger (under uvicorn's own logging
    # config "uvicorn" and "uvicorn.access" do not), so caplog alone would never hear them:
    # the capture sits on each of them, and on the root for everything else.
    secrets = [SIM_KEY, SIM_SECRET, API_KEY]
    with capture_logs(logging.DEBUG) as logs:
        started = await start_service(market_data_api_key=API_KEY, log_level="DEBUG")
        await started.wait_connected()
        right, wrong = {"X-API-Key": API_KEY}, {"Authorization": "Bearer not-the-key-0123456"}
        for headers in (right, wrong, {}):
            await started.http.get("/api/v1/subscriptions", headers=headers)
        await started.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]}, headers=right)
        await started.http.post("/api/v1/subscribe", json={"symbols": ["x y"]}, headers=right)
        auths = simulator.auth_attempts
        await simulator.drop_connections()  # a reconnect: the auth frame again
        await eventually(lambda: simulator.auth_attempts > auths, what="a new auth")
        await started.wait_connected()
        await started.stop()  # uvicorn's shutdown lines too
    heard = {r.name for r in logs.named(*UVICORN_LOGGERS)}
    assert {"uvicorn.error", "uvicorn.access"} <= heard, heard
    # The simulator plays Alpaca: its own records may hold what it was sent.
    ours = [
        r for r in logs.records if not r.name.startswith(("apps.simulator", "websockets.server"))
    ]
    for record in ours:
        text = f"{record.getMessage()} {record.exc_info or ''} {vars(record)}"
        leaked = [secret for secret in secrets if secret in text]
        assert not leaked, f"{record.name}: {text}"


# -- quiet by default: the HTTP client and the probes -----------------------------------------


def access_paths(logs: CapturedLogs) -> list[str]:
    """The path (and query) of every uvicorn access-log line."""
    return [str(r.args[2]) for r in logs.named(ACCESS_LOGGER) if isinstance(r.args, tuple)]


async def poll_and_probe(started: Service, simulator: AlpacaSimulator) -> None:
    """Position polls (httpx requests to the simulator), probes and one ordinary request."""
    await eventually(lambda: simulator.rest.count("/v2/positions") >= 3, what="position polls")
    for path in ("/health", "/health?verbose=1", "/metrics", "/health/live", "/health/ready"):
        await started.http.get(path)
    assert (await started.http.get("/api/v1/subscriptions")).status_code == 200


async def test_http_client_requests_and_probes_stay_out_of_the_log_by_default(
    start_service: ServiceFactory, simulator: AlpacaSimulator
) -> None:
    with capture_logs(logging.DEBUG) as logs:
        started = await start_service(**local_broker(simulator), position_sync_interval=0.05)
        await poll_and_probe(started, simulator)
    http_client = [r for r in logs.named(*HTTP_CLIENT_LOGGERS) if r.levelno < logging.WARNING]
    assert http_client == []
    paths = access_paths(logs)
    assert "/api/v1/subscriptions" in paths  # other requests are still logged
    assert [p for p in paths if p.partition("?")[0] in PROBE_PATHS] == []


async def test_log_http_client_and_log_probes_bring_them_back(
    start_service: ServiceFactory, simulator: AlpacaSimulator
) -> None:
    with capture_logs(logging.DEBUG) as logs:
        started = await start_service(
            **local_broker(simulator),
            position_sync_interval=0.05,
            log_http_client=True,
            log_probes=True,
        )
        await poll_and_probe(started, simulator)
    polls = [r for r in logs.named("httpx") if "/v2/positions" in r.getMessage()]
    assert len(polls) >= 3
    assert all(r.levelno == logging.INFO for r in polls)
    paths = access_paths(logs)
    assert {"/health", "/health?verbose=1", "/metrics", "/api/v1/subscriptions"} <= set(paths)


# -- a real process --------------------------------------------------------------------------


async def test_serve_logs_json_lines_without_secrets(
    simulator: AlpacaSimulator, redis_params: RedisConnectionParams, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "ALPACA_API_KEY": SIM_KEY,
        "ALPACA_SECRET_KEY": SIM_SECRET,
        "ALPACA_DATA_URL": simulator.url(),
        "REDIS_HOST": redis_params.host,
        "REDIS_PORT": str(redis_params.port),
        "PORT": str(port),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "RECONNECT_BASE_DELAY": "0.05",
        "RECONNECT_MAX_DELAY": "0.2",
    }
    stderr_path = tmp_path / "stderr.log"
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "apps.market_data_service.cli",
            "serve",
            cwd=tmp_path,  # no stray .env is read
            env={**env, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                await wait_healthy(http)
                assert (await http.get("/metrics")).status_code == 200
                await simulator.drop_connections()  # one reconnect, cause "closed"
                await eventually(lambda: simulator.authenticated_connections == 1, timeout=10)
                await wait_healthy(http)
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                code = await process.wait()
    text = stderr_path.read_text()
    assert code == 0, text
    events: list[dict[str, Any]] = []
    for line in text.splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    loggers = {event["logger"] for event in events}
    assert "uvicorn.error" in loggers  # uvicorn's own lines go through the same formatter
    reconnects = [e for e in events if "reconnect attempt" in e["message"]]
    assert [e["cause"] for e in reconnects] == ["closed"]
    assert SIM_SECRET not in text
    assert SIM_KEY not in text


async def wait_healthy(http: httpx.AsyncClient, within: float = 20.0) -> None:
    async with asyncio.timeout(within):
        while True:
            with contextlib.suppress(httpx.HTTPError):
                reply = await http.get("/health")
                if reply.status_code == 200 and reply.json()["status"] == "healthy":
                    return
            await asyncio.sleep(0.05)


# -- the first hour of a new user: `market-data serve` with typos -------------------------------

_OUR_PREFIXES = ("ALPACA_", "REDIS_", "MARKET_", "PRICE_", "RECONNECT_", "MAX_", "STALL_")
_OUR_PREFIXES += ("POSITION_", "SERVICE_", "LOG_", "SUBSCRIPTION_")
NEW_USER_KEY = "AKNEWUSER7H3K9P2M5Q8"
NEW_USER_SECRET = "new-user-secret-Wq4Zr8Tn2Jx6"
NEW_USER_REDIS = "new-user-redis-Lp3Fv7Bc1Nd5"
NEW_USER_API_KEY = "new-user-api-key-Gm6Ys0Hk4Rw8"
TYPO_SECRET = "typo-held-secret-Ue9Ka3Oj7Ci1"


async def test_serve_warns_about_typos_logs_its_configuration_and_no_secret(
    simulator_factory: SimulatorFactory, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    sim = await simulator_factory(api_key=NEW_USER_KEY, secret_key=NEW_USER_SECRET)
    redis = redis_factory(password=NEW_USER_REDIS, start=False)
    await asyncio.to_thread(redis.start)
    port = free_port()
    inherited = {k: v for k, v in os.environ.items() if not k.upper().startswith(_OUR_PREFIXES)}
    env = {
        **inherited,
        "PYTHONPATH": str(ROOT),
        "ALPACA_API_KEY": NEW_USER_KEY,
        "ALPACA_SECRET_KEY": NEW_USER_SECRET,
        "ALPACA_DATA_URL": sim.url(),
        **{name.upper(): url for name, url in local_broker(sim).items()},
        "REDIS_URL": redis.url,  # the password inside
        "REDIS_NAMESPACE": "paper",
        "MARKET_DATA_API_KEY": NEW_USER_API_KEY,
        "POSITION_SYNC_INTERVAL": "0.05",
        "PORT": str(port),
        "LOG_FORMAT": "json",
        "RECONNECT_BASE_DELAY": "0.05",
        "RECONNECT_MAX_DELAY": "0.2",
        # The typos: in the environment, one of them holding a secret, and in .env.
        "PRICE_CACHE_TTLL": "5",
        "REDIS_PASSWROD": TYPO_SECRET,
    }
    (tmp_path / ".env").write_text("ALPACA_DATA_FEEED=sip\n")
    stderr_path = tmp_path / "stderr.log"
    auth = {"X-API-Key": NEW_USER_API_KEY}
    with stderr_path.open("wb") as stderr:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "apps.market_data_service.cli", "serve"),
            cwd=tmp_path,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                await wait_healthy(http)
                assert (await http.get("/metrics", headers=auth)).status_code == 200
                assert (await http.get("/api/v1/subscriptions", headers=auth)).status_code == 200
                await eventually(lambda: sim.rest.count("/v2/positions") >= 3, timeout=10)
                await sim.drop_connections()  # one reconnect: its delay, rounded
                await eventually(lambda: sim.authenticated_connections == 1, timeout=10)
                await wait_healthy(http)
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                code = await process.wait()
    text = stderr_path.read_text()
    assert code == 0, text
    events = [json.loads(line) for line in text.splitlines()]
    config = "apps.market_data_service.config"
    warnings = [e["message"] for e in events if e["logger"] == config and e["level"] == "WARNING"]
    assert warnings == [
        "unknown setting PRICE_CACHE_TTLL in the environment is ignored; "
        "did you mean PRICE_CACHE_TTL?",
        "unknown setting REDIS_PASSWROD in the environment is ignored; "
        "did you mean REDIS_PASSWORD?",
        "unknown setting ALPACA_DATA_FEEED in .env is ignored; did you mean ALPACA_DATA_FEED?",
    ]
    configuration = [e["message"] for e in events if e["message"].startswith("configuration:")]
    assert configuration == [
        f"configuration: feed=iex stream=ws://127.0.0.1:{sim.port} "
        f"redis=127.0.0.1:{redis.port}/0 redis_tls=off namespace=paper price_cache_ttl=300s "
        "api_key=on position_sync=on"
    ]
    # Quiet: no line per positions poll, none per probe; other requests still logged.
    assert [e for e in events if e["logger"] in HTTP_CLIENT_LOGGERS] == []
    access = [e["message"] for e in events if e["logger"] == ACCESS_LOGGER]
    assert any('"GET /api/v1/subscriptions HTTP/1.1" 200' in line for line in access), access
    assert not [line for line in access if "/health" in line or "/metrics" in line], access
    (reconnect,) = [e for e in events if "reconnect attempt" in e["message"]]
    assert reconnect["delay"] == float(f"{reconnect['delay']:.3g}")
    for secret in (NEW_USER_KEY, NEW_USER_SECRET, NEW_USER_REDIS, NEW_USER_API_KEY, TYPO_SECRET):
        assert secret not in text
