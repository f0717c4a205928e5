"""Settings from the environment (and an optional ``.env``): the spec's names and defaults,
errors that name the setting and never show a secret."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from apps.market_data_service.config import (
    Settings,
    SettingsError,
    UnknownSetting,
    load_settings,
    log_settings,
    unknown_settings,
)
from apps.market_data_service.main import create_app
from apps.simulator import AlpacaSimulator
from libs.redis_client import RedisConnectionParams
from tests.fixtures.tls import make_ca

API_KEY = "AKTESTKEY0123456789"
SECRET_KEY = "s3cr3t-VALUE-never-shown-0123456789"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No ALPACA_*/REDIS_*/service variables and a cwd without a stray ``.env``."""
    prefixes = ("ALPACA_", "REDIS_", "RECONNECT_", "MAX_", "PRICE_", "MARKET_", "LOG_")
    prefixes += ("SERVICE_", "POSITION_", "STALL_", "SUBSCRIPTION_")
    names = {"PORT"}
    for name in list(os.environ):
        if name.upper().startswith(prefixes) or name.upper() in names:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_API_KEY", API_KEY)
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET_KEY)


def settings_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """Set ``env``, expect :class:`SettingsError`, return its message."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return str(caught.value)


# -- defaults ----------------------------------------------------------------------------


@pytest.mark.usefixtures("keys")
def test_defaults_match_the_spec() -> None:
    settings = load_settings()
    assert settings.service_name == "market-data-service"
    assert settings.service_host == "127.0.0.1"
    assert settings.port == 8004
    assert settings.log_level == "INFO"
    assert settings.alpaca_base_url == "https://paper-api.alpaca.markets"
    assert settings.alpaca_data_base_url == "https://data.alpaca.markets"
    assert settings.alpaca_data_feed == "iex"
    assert settings.alpaca_data_url is None
    assert settings.redis_host == "localhost"
    assert settings.redis_port == 6379
    assert settings.redis_db == 0
    assert settings.redis_password is None
    assert settings.price_cache_ttl == 300
    assert settings.max_reconnect_attempts == 10
    assert settings.reconnect_base_delay == 5
    assert settings.reconnect_max_delay == 300
    assert settings.alpaca_api_key.get_secret_value() == API_KEY
    assert settings.alpaca_secret_key.get_secret_value() == SECRET_KEY


# -- environment variable names ------------------------------------------------------------


@pytest.mark.usefixtures("keys")
def test_environment_variable_names(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "SERVICE_NAME": "md-test",
        "SERVICE_HOST": "0.0.0.0",
        "PORT": "9004",
        "LOG_LEVEL": "debug",
        "ALPACA_BASE_URL": "https://api.alpaca.markets/",
        "ALPACA_DATA_BASE_URL": "https://data.sandbox.alpaca.markets",
        "ALPACA_DATA_FEED": "sip",
        "REDIS_HOST": "redis.internal",
        "REDIS_PORT": "6380",
        "REDIS_DB": "3",
        "REDIS_PASSWORD": "redis-pass-xyz",
        "PRICE_CACHE_TTL": "60",
        "MAX_RECONNECT_ATTEMPTS": "4",
        "RECONNECT_BASE_DELAY": "0.5",
        "RECONNECT_MAX_DELAY": "2.5",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.service_name == "md-test"
    assert settings.service_host == "0.0.0.0"
    assert settings.port == 9004
    assert settings.log_level == "DEBUG"
    assert settings.alpaca_base_url == "https://api.alpaca.markets"
    assert settings.alpaca_data_base_url == "https://data.sandbox.alpaca.markets"
    assert settings.alpaca_data_feed == "sip"
    assert settings.redis_host == "redis.internal"
    assert settings.redis_port == 6380
    assert settings.redis_db == 3
    assert settings.redis_password is not None
    assert settings.redis_password.get_secret_value() == "redis-pass-xyz"
    assert settings.price_cache_ttl == 60
    assert settings.max_reconnect_attempts == 4
    assert settings.reconnect_base_delay == 0.5
    assert settings.reconnect_max_delay == 2.5
    params = settings.redis_params()
    assert (params.host, params.port, params.db, params.password) == (
        "redis.internal",
        6380,
        3,
        "redis-pass-xyz",
    )


@pytest.mark.usefixtures("keys")
def test_lower_case_variable_names_work_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("price_cache_ttl", "42")
    assert load_settings().price_cache_ttl == 42


def test_dotenv_in_the_working_directory_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    (clean_env / ".env").write_text(
        f"ALPACA_API_KEY={API_KEY}\nALPACA_SECRET_KEY={SECRET_KEY}\nPRICE_CACHE_TTL=120\n"
        "REDIS_HOST=from-dotenv\n"
    )
    monkeypatch.setenv("REDIS_HOST", "from-env")
    settings = load_settings()
    assert settings.alpaca_api_key.get_secret_value() == API_KEY
    assert settings.price_cache_ttl == 120
    assert settings.redis_host == "from-env"


def test_env_file_none_ignores_a_dotenv(clean_env: Path) -> None:
    (clean_env / ".env").write_text("PRICE_CACHE_TTL=120\n")
    settings = Settings(
        alpaca_api_key=API_KEY,
        alpaca_secret_key=SECRET_KEY,
        _env_file=None,
    )
    assert settings.price_cache_ttl == 300


@pytest.mark.usefixtures("keys")
def test_overrides_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    assert load_settings(port=9100).port == 9100


# -- missing keys ------------------------------------------------------------------------


def test_missing_keys_name_both_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch)
    assert "ALPACA_API_KEY" in message
    assert "ALPACA_SECRET_KEY" in message
    assert "missing" in message


def test_one_missing_key_is_named_and_the_other_value_not_shown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = settings_error(monkeypatch, ALPACA_SECRET_KEY=SECRET_KEY)
    assert "ALPACA_API_KEY" in message
    assert SECRET_KEY not in message


def test_blank_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, ALPACA_API_KEY="", ALPACA_SECRET_KEY="   ")
    assert "ALPACA_API_KEY" in message
    assert "ALPACA_SECRET_KEY" in message


def test_missing_keys_and_a_bad_value_are_all_named(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, PRICE_CACHE_TTL="-1")
    assert "ALPACA_API_KEY" in message
    assert "ALPACA_SECRET_KEY" in message
    assert "PRICE_CACHE_TTL" in message


# -- bad values ----------------------------------------------------------------------------


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("PRICE_CACHE_TTL", "-5", "PRICE_CACHE_TTL"),
        ("PRICE_CACHE_TTL", "0", "PRICE_CACHE_TTL"),
        ("PRICE_CACHE_TTL", "five", "PRICE_CACHE_TTL"),
        ("ALPACA_DATA_FEED", "nasdaq", "ALPACA_DATA_FEED"),
        ("ALPACA_DATA_URL", "http://stream.data.alpaca.markets/v2/iex", "ALPACA_DATA_URL"),
        ("ALPACA_DATA_URL", "wss://", "ALPACA_DATA_URL"),
        ("ALPACA_BASE_URL", "paper-api.alpaca.markets", "ALPACA_BASE_URL"),
        ("PORT", "70000", "PORT"),
        ("PORT", "0", "PORT"),
        ("REDIS_PORT", "abc", "REDIS_PORT"),
        ("REDIS_DB", "-1", "REDIS_DB"),
        ("MAX_RECONNECT_ATTEMPTS", "0", "MAX_RECONNECT_ATTEMPTS"),
        ("RECONNECT_BASE_DELAY", "0", "RECONNECT_BASE_DELAY"),
        ("RECONNECT_BASE_DELAY", "nan", "RECONNECT_BASE_DELAY"),
        ("RECONNECT_MAX_DELAY", "inf", "RECONNECT_MAX_DELAY"),
        ("LOG_LEVEL", "verbose", "LOG_LEVEL"),
    ],
)
def test_bad_value_names_the_setting_and_never_a_secret(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    message = settings_error(monkeypatch, **{name: value})
    assert named in message
    assert "invalid" in message
    assert SECRET_KEY not in message
    assert API_KEY not in message


@pytest.mark.usefixtures("keys")
def test_max_delay_below_base_delay_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, RECONNECT_BASE_DELAY="10", RECONNECT_MAX_DELAY="5")
    assert "RECONNECT_MAX_DELAY" in message
    assert "RECONNECT_BASE_DELAY" in message
    assert SECRET_KEY not in message


@pytest.mark.usefixtures("keys")
def test_equal_delays_are_fine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONNECT_BASE_DELAY", "2")
    monkeypatch.setenv("RECONNECT_MAX_DELAY", "2")
    settings = load_settings()
    assert settings.reconnect_base_delay == settings.reconnect_max_delay == 2


def test_error_never_shows_a_secret_even_when_it_is_the_bad_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A secret pasted into the wrong variable is still not echoed back.
    message = settings_error(
        monkeypatch,
        ALPACA_API_KEY=API_KEY,
        ALPACA_SECRET_KEY=SECRET_KEY,
        PRICE_CACHE_TTL=SECRET_KEY,
        REDIS_PORT=API_KEY,
    )
    assert "PRICE_CACHE_TTL" in message
    assert "REDIS_PORT" in message
    assert SECRET_KEY not in message
    assert API_KEY not in message


def test_settings_error_does_not_chain_the_validation_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The pydantic error holds the inputs; a traceback must not print it.
    monkeypatch.setenv("ALPACA_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("PORT", "-1")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# -- stream URL ------------------------------------------------------------------------------


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize(
    ("feed", "url"),
    [
        ("iex", "wss://stream.data.alpaca.markets/v2/iex"),
        ("sip", "wss://stream.data.alpaca.markets/v2/sip"),
        ("delayed_sip", "wss://stream.data.alpaca.markets/v2/delayed_sip"),
        ("test", "wss://stream.data.alpaca.markets/v2/test"),
        ("boats", "wss://stream.data.alpaca.markets/v1beta1/boats"),
        ("overnight", "wss://stream.data.alpaca.markets/v1beta1/overnight"),
    ],
)
def test_stream_url_of_each_feed(monkeypatch: pytest.MonkeyPatch, feed: str, url: str) -> None:
    monkeypatch.setenv("ALPACA_DATA_FEED", feed)
    assert load_settings().stream_url == url


@pytest.mark.usefixtures("keys")
def test_default_stream_url_is_iex() -> None:
    assert load_settings().stream_url == "wss://stream.data.alpaca.markets/v2/iex"


@pytest.mark.usefixtures("keys")
def test_alpaca_data_url_overrides_the_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_DATA_FEED", "sip")
    monkeypatch.setenv("ALPACA_DATA_URL", "ws://127.0.0.1:8765/v2/iex")
    assert load_settings().stream_url == "ws://127.0.0.1:8765/v2/iex"


# -- secrets ---------------------------------------------------------------------------------


@pytest.mark.usefixtures("keys")
def test_secrets_are_not_in_repr_str_or_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_PASSWORD", "redis-pass-xyz")
    settings = load_settings()
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert SECRET_KEY not in text
        assert API_KEY not in text
        assert "redis-pass-xyz" not in text
    assert "**********" in repr(settings)


# -- Redis URL, TLS and the API key (issue 4) ------------------------------------------------

REDIS_SECRET = "redis-url-secret-value-42"
SERVICE_KEY = "service-api-key-0123456789"


@pytest.fixture
def ca_bundle(tmp_path: Path) -> Path:
    """A real PEM CA certificate (the one the TLS tests use)."""
    cert, _ = make_ca(tmp_path, "settings-test-ca")
    return cert


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://cache.internal:6380/2", ("cache.internal", 6380, 2, None, False)),
        (f"redis://:{REDIS_SECRET}@cache:6379/0", ("cache", 6379, 0, REDIS_SECRET, False)),
        (f"rediss://user:{REDIS_SECRET}@cache:6390", ("cache", 6390, 0, REDIS_SECRET, True)),
        ("unix:///run/redis.sock?db=3", ("localhost", 6379, 3, None, False)),
    ],
)
def test_redis_url_overrides_the_separate_settings(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: tuple[object, ...]
) -> None:
    monkeypatch.setenv("REDIS_HOST", "ignored-host")
    monkeypatch.setenv("REDIS_PORT", "1234")
    monkeypatch.setenv("REDIS_URL", url)
    settings = load_settings()
    params = settings.redis_params()
    assert (params.host, params.port, params.db, params.password, params.ssl) == expected
    assert REDIS_SECRET not in repr(settings)
    assert REDIS_SECRET not in settings.model_dump_json()


@pytest.mark.usefixtures("keys")
def test_redis_password_completes_a_url_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "rediss://cache:6390/1")
    monkeypatch.setenv("REDIS_PASSWORD", REDIS_SECRET)
    params = load_settings().redis_params()
    assert (params.password, params.ssl, params.db) == (REDIS_SECRET, True, 1)


@pytest.mark.usefixtures("keys")
def test_redis_tls_with_a_ca_bundle(monkeypatch: pytest.MonkeyPatch, ca_bundle: Path) -> None:
    monkeypatch.setenv("REDIS_SSL", "true")
    monkeypatch.setenv("REDIS_SSL_CA_CERTS", str(ca_bundle))
    params = load_settings().redis_params()
    assert (params.ssl, params.ssl_ca_certs) == (True, str(ca_bundle))
    monkeypatch.delenv("REDIS_SSL")
    monkeypatch.setenv("REDIS_URL", "rediss://cache:6390/0")
    params = load_settings().redis_params()
    assert (params.ssl, params.ssl_ca_certs) == (True, str(ca_bundle))


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize(
    "url",
    [
        "http://cache:6379/0",
        "cache:6379",
        f"redis://:{REDIS_SECRET}@cache:notaport/0",
        f"redis://:{REDIS_SECRET}@cache:6379/zero",
        f"redis://:{REDIS_SECRET}@cache:6379/0?ssl=true",
        f"redis://:{REDIS_SECRET}@cache:70000/0",
        "unix://",
        "redis://cache:6379/1?db=2",
    ],
)
def test_bad_redis_url_names_the_setting_and_never_the_password(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    message = settings_error(monkeypatch, REDIS_URL=url)
    assert "REDIS_URL" in message
    assert REDIS_SECRET not in message


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REDIS_URL": "redis://cache:6379/0", "REDIS_SSL": "true"}, "REDIS_SSL"),
        (
            {"REDIS_URL": f"redis://:{REDIS_SECRET}@cache/0", "REDIS_PASSWORD": REDIS_SECRET},
            "REDIS_PASSWORD",
        ),
        ({"REDIS_SSL_CA_CERTS": "/nonexistent/ca.pem"}, "REDIS_SSL_CA_CERTS"),
        ({"REDIS_SSL": "maybe"}, "REDIS_SSL"),
    ],
    ids=["ssl-vs-url", "password-twice", "missing-ca-file", "ssl-not-bool"],
)
def test_conflicting_or_missing_redis_settings_are_named(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], named: str
) -> None:
    message = settings_error(monkeypatch, **env)
    assert named in message
    assert REDIS_SECRET not in message


@pytest.mark.usefixtures("keys")
def test_ca_bundle_without_tls_is_refused(monkeypatch: pytest.MonkeyPatch, ca_bundle: Path) -> None:
    message = settings_error(monkeypatch, REDIS_SSL_CA_CERTS=str(ca_bundle))
    assert "REDIS_SSL_CA_CERTS needs TLS" in message


@pytest.mark.usefixtures("keys")
def test_a_ca_bundle_that_is_not_pem_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate\n")
    message = settings_error(monkeypatch, REDIS_SSL="true", REDIS_SSL_CA_CERTS=str(bogus))
    assert "REDIS_SSL_CA_CERTS" in message
    assert "PEM" in message


@pytest.mark.usefixtures("keys")
def test_api_key_is_optional_and_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings().market_data_api_key is None
    monkeypatch.setenv("MARKET_DATA_API_KEY", SERVICE_KEY)
    settings = load_settings()
    assert settings.market_data_api_key is not None
    assert settings.market_data_api_key.get_secret_value() == SERVICE_KEY
    assert SERVICE_KEY not in repr(settings)
    assert SERVICE_KEY not in settings.model_dump_json()


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("", "at least 16"),
        ("short-key", "at least 16"),
        ("a key with spaces in it", "printable ASCII"),
        ("ключ-0123456789abcdef", "printable ASCII"),
        ("tab\tseparated-0123456789", "printable ASCII"),
    ],
    ids=["empty", "short", "spaces", "non-ascii", "control"],
)
def test_bad_api_key_names_the_setting_and_never_the_key(
    monkeypatch: pytest.MonkeyPatch, key: str, why: str
) -> None:
    message = settings_error(monkeypatch, MARKET_DATA_API_KEY=key)
    assert "MARKET_DATA_API_KEY" in message
    assert why in message
    if key:
        assert key not in message


@pytest.mark.usefixtures("keys")
def test_api_key_from_a_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text(f"{SERVICE_KEY}\n")  # a trailing newline, as editors leave it
    monkeypatch.setenv("MARKET_DATA_API_KEY_FILE", str(key_file))
    key = load_settings().market_data_api_key
    assert key is not None
    assert key.get_secret_value() == SERVICE_KEY


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize(
    ("content", "env", "named"),
    [
        (None, {}, "MARKET_DATA_API_KEY_FILE"),  # the file does not exist
        ("", {}, "MARKET_DATA_API_KEY_FILE"),
        ("short\n", {}, "MARKET_DATA_API_KEY_FILE"),
        (SERVICE_KEY, {"MARKET_DATA_API_KEY": SERVICE_KEY}, "not both"),
    ],
    ids=["missing-file", "empty-file", "short-key", "both-set"],
)
def test_bad_api_key_file_is_named(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    content: str | None,
    env: dict[str, str],
    named: str,
) -> None:
    key_file = tmp_path / "api-key"
    if content is not None:
        key_file.write_text(content)
    message = settings_error(monkeypatch, MARKET_DATA_API_KEY_FILE=str(key_file), **env)
    assert named in message
    assert SERVICE_KEY not in message


def test_an_unreadable_api_key_file_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_bytes(b"\xff\xfe not text")
    message = settings_error(
        monkeypatch,
        ALPACA_API_KEY=API_KEY,
        ALPACA_SECRET_KEY=SECRET_KEY,
        MARKET_DATA_API_KEY_FILE=str(key_file),
    )
    assert "MARKET_DATA_API_KEY_FILE cannot be read" in message


@pytest.mark.usefixtures("keys")
async def test_the_app_refuses_to_start_with_a_bad_setting_and_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `uvicorn apps.market_data_service.main:app` reads the settings at startup.
    monkeypatch.setenv("REDIS_URL", f"redis://:{REDIS_SECRET}@cache:notaport/0")
    monkeypatch.setenv("PRICE_CACHE_TTL", "-5")
    app = create_app()
    with pytest.raises(SettingsError) as caught:
        async with app.router.lifespan_context(app):
            pass
    assert "REDIS_URL" in str(caught.value)
    assert "PRICE_CACHE_TTL" in str(caught.value)
    assert REDIS_SECRET not in str(caught.value)


# -- variables that look like settings but are none (issue "The first hour") ---------------

TYPO_SECRET = "typo-held-secret-Vb7Qm2Lx9Rt4"


def test_unknown_settings_name_the_setting_each_resembles(clean_env: Path) -> None:
    (clean_env / ".env").write_text(
        "ALPACA_DATA_FEEED=sip\nexport REDIS_HOSTT=cache\nPRICE_CACHE_TTL=60\n# COMMENTED_OUT=1\n"
    )
    environ = {
        "PRICE_CACHE_TTLL": "5",
        "alpaca_secret_keyy": TYPO_SECRET,  # names are case-insensitive, like the settings
        "LOGLEVEL": "DEBUG",  # no prefix of ours, but a near miss
        "MAX_RECONNECT_ATEMPTS": "3",
        "SUBSCRIPTION_CHECK_INTERVALL": "1",
        "LOG_DESTINATION": "syslog",  # our prefix, nothing like it: still named
        # Settings, other variables of the project, Kubernetes service links, strangers.
        "ALPACA_DATA_FEED": "iex",
        "log_format": "json",
        "REDIS_SERVER_BIN": "/usr/bin/redis-server",
        "REDIS_SERVICE_HOST": "10.0.0.7",
        "REDIS_SERVICE_PORT_REDIS": "6379",
        "MARKET_DATA_PORT": "tcp://10.0.0.8:8004",
        "MARKET_DATA_PORT_8004_TCP_ADDR": "10.0.0.8",
        "PATH": "/usr/bin",
        "HOME": "/root",
        "LOGNAME": "root",
        "HOSTNAME": "box",
    }
    found = unknown_settings(environ)  # and the settings' own .env, in the working directory
    assert found == [
        UnknownSetting("LOGLEVEL", "the environment", "LOG_LEVEL"),
        UnknownSetting("LOG_DESTINATION", "the environment", None),
        UnknownSetting("MAX_RECONNECT_ATEMPTS", "the environment", "MAX_RECONNECT_ATTEMPTS"),
        UnknownSetting("PRICE_CACHE_TTLL", "the environment", "PRICE_CACHE_TTL"),
        UnknownSetting(
            "SUBSCRIPTION_CHECK_INTERVALL", "the environment", "SUBSCRIPTION_CHECK_INTERVAL"
        ),
        UnknownSetting("alpaca_secret_keyy", "the environment", "ALPACA_SECRET_KEY"),
        UnknownSetting("ALPACA_DATA_FEEED", ".env", "ALPACA_DATA_FEED"),
        UnknownSetting("REDIS_HOSTT", ".env", "REDIS_HOST"),
    ]
    assert found[3].message() == (
        "unknown setting PRICE_CACHE_TTLL in the environment is ignored; "
        "did you mean PRICE_CACHE_TTL?"
    )
    assert "no setting resembles it" in found[1].message()
    assert TYPO_SECRET not in repr(found)
    assert unknown_settings(environ, env_files=[]) == found[:6]


@pytest.mark.usefixtures("keys")
def test_load_settings_keeps_the_misspelt_variables_it_ignored(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    # The issue: both typos are ignored and the defaults used without a word.
    (clean_env / ".env").write_text("ALPACA_DATA_FEEED=sip\n")
    monkeypatch.setenv("PRICE_CACHE_TTLL", "5")
    settings = load_settings()
    assert (settings.price_cache_ttl, settings.alpaca_data_feed) == (300, "iex")
    assert [(f.name, f.source, f.suggestion) for f in settings.unknown_variables] == [
        ("PRICE_CACHE_TTLL", "the environment", "PRICE_CACHE_TTL"),
        ("ALPACA_DATA_FEEED", ".env", "ALPACA_DATA_FEED"),
    ]
    # No dotenv asked for: its entries are not findings either.
    assert [f.name for f in load_settings(_env_file=None).unknown_variables] == ["PRICE_CACHE_TTLL"]
    # Settings built directly (tests, the demo) chose their inputs: nothing to report.
    assert Settings(_env_file=None).unknown_variables == ()


def test_a_misspelt_required_setting_is_named_in_the_error(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path
) -> None:
    (clean_env / ".env").write_text(f"ALPACA_SECRET_KEYY={TYPO_SECRET}\n")
    message = settings_error(monkeypatch, ALPACA_API_KEY=API_KEY)
    assert "missing settings: ALPACA_SECRET_KEY" in message
    assert "ALPACA_SECRET_KEYY in .env (did you mean ALPACA_SECRET_KEY?)" in message
    assert TYPO_SECRET not in message


@pytest.mark.usefixtures("keys")
def test_log_settings_warns_once_per_unknown_variable_and_never_shows_its_value(
    monkeypatch: pytest.MonkeyPatch, clean_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (clean_env / ".env").write_text(f"ALPACA_DATA_FEEED=sip\nREDIS_PASSWROD={TYPO_SECRET}\n")
    monkeypatch.setenv("PRICE_CACHE_TTLL", "5")
    caplog.set_level(logging.INFO)
    log_settings(load_settings())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "unknown setting PRICE_CACHE_TTLL in the environment is ignored; "
        "did you mean PRICE_CACHE_TTL?",
        "unknown setting ALPACA_DATA_FEEED in .env is ignored; did you mean ALPACA_DATA_FEED?",
        "unknown setting REDIS_PASSWROD in .env is ignored; did you mean REDIS_PASSWORD?",
    ]
    assert TYPO_SECRET not in caplog.text
    assert SECRET_KEY not in caplog.text


# -- the effective configuration, one line -------------------------------------------------


@pytest.mark.usefixtures("keys")
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {},
            "feed=iex stream=wss://stream.data.alpaca.markets redis=localhost:6379/0 "
            "redis_tls=off namespace=(none) price_cache_ttl=300s api_key=off position_sync=on",
        ),
        (
            {
                "ALPACA_DATA_FEED": "sip",
                # A proxy whose path and query carry a token, and user info.
                "ALPACA_DATA_URL": f"wss://user:{TYPO_SECRET}@proxy.internal:8443/t/{TYPO_SECRET}"
                f"?token={TYPO_SECRET}",
                "REDIS_URL": f"rediss://admin:{REDIS_SECRET}@cache.internal:6390/2",
                "REDIS_NAMESPACE": "paper",
                "PRICE_CACHE_TTL": "60",
                "MARKET_DATA_API_KEY": SERVICE_KEY,
            },
            "feed=sip stream=wss://proxy.internal:8443 redis=cache.internal:6390/2 "
            "redis_tls=on namespace=paper price_cache_ttl=60s api_key=on position_sync=off",
        ),
        (
            {"REDIS_URL": f"unix://:{REDIS_SECRET}@/run/redis.sock?db=3", "REDIS_PORT": "7000"},
            "feed=iex stream=wss://stream.data.alpaca.markets redis=unix:/run/redis.sock?db=3 "
            "redis_tls=off namespace=(none) price_cache_ttl=300s api_key=off position_sync=on",
        ),
        (
            # Accepted by the settings, refused by the connection later: the line still comes.
            {"ALPACA_DATA_URL": "ws://sim.local:notaport/v2/iex"},
            "feed=iex stream=ws://sim.local redis=localhost:6379/0 redis_tls=off "
            "namespace=(none) price_cache_ttl=300s api_key=off position_sync=off",
        ),
    ],
    ids=["defaults", "everything-set", "unix-socket", "port-not-a-number"],
)
def test_the_configuration_line_holds_no_secret(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    summary = load_settings().summary()
    assert summary == expected
    for secret in (API_KEY, SECRET_KEY, REDIS_SECRET, SERVICE_KEY, TYPO_SECRET, "admin"):
        assert secret not in summary


async def test_the_app_warns_about_unknown_variables_and_logs_its_configuration_at_startup(
    monkeypatch: pytest.MonkeyPatch,
    clean_env: Path,
    caplog: pytest.LogCaptureFixture,
    simulator: AlpacaSimulator,
    redis_params: RedisConnectionParams,
) -> None:
    # `uvicorn apps.market_data_service.main:app`: the app reads the settings itself.
    (clean_env / ".env").write_text("ALPACA_DATA_FEEED=sip\n")
    for name, value in {
        "ALPACA_API_KEY": simulator.config.api_key,
        "ALPACA_SECRET_KEY": simulator.config.secret_key,
        "ALPACA_DATA_URL": simulator.url(),
        "REDIS_HOST": redis_params.host,
        "REDIS_PORT": str(redis_params.port),
        "PRICE_CACHE_TTLL": "5",
        "REDIS_PASSWROD": TYPO_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    caplog.set_level(logging.INFO)
    app = create_app()
    async with app.router.lifespan_context(app):
        pass
    ours = [r for r in caplog.records if r.name == "apps.market_data_service.config"]
    assert [(r.levelname, r.getMessage().split(" is ignored")[0]) for r in ours[:-1]] == [
        ("WARNING", "unknown setting PRICE_CACHE_TTLL in the environment"),
        ("WARNING", "unknown setting REDIS_PASSWROD in the environment"),
        ("WARNING", "unknown setting ALPACA_DATA_FEEED in .env"),
    ]
    assert ours[-1].levelname == "INFO"
    assert ours[-1].getMessage() == (
        f"configuration: feed=iex stream=ws://127.0.0.1:{simulator.port} "
        f"redis={redis_params.host}:{redis_params.port}/0 redis_tls=off namespace=(none) "
        "price_cache_ttl=300s api_key=off position_sync=off"
    )
    assert TYPO_SECRET not in caplog.text
