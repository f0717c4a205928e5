"""Service settings, from the environment (and an optional ``.env``).

Names follow the spec's ``Settings`` plus the ones docs/architecture.md lists. Secrets are
``SecretStr`` so they never appear in logs, reprs or API answers. A mistake fails at
startup with a message that names the setting (:func:`load_settings`). A variable that
looks like a setting but is none (``PRICE_CACHE_TTLL``) would be ignored silently:
:func:`unknown_settings` finds them, and :func:`log_settings` warns about each at
startup, next to one line with the effective configuration (:meth:`Settings.summary`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import ssl
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    Field,
    FilePath,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from apps.market_data_service.settings_typos import UnknownSetting, dotenv_files, find_unknown
from libs.market_data import defaults, feed_url
from libs.market_data.leadership.fencing import INSTANCE_ID_PATTERN, default_instance_id
from libs.market_data.stream.feeds import crypto_feed_url
from libs.redis_client import RedisConnectionParams
from libs.redis_client.cluster import ClusterParams

__all__ = [
    "KNOWN_FEEDS",
    "MIN_API_KEY_LENGTH",
    "Settings",
    "SettingsError",
    "UnknownSetting",
    "load_settings",
    "log_settings",
    "unknown_settings",
]

logger = logging.getLogger(__name__)

KNOWN_FEEDS: Final = frozenset({"iex", "sip", "delayed_sip", "boats", "overnight", "test"})
MIN_API_KEY_LENGTH: Final = 16


def _check_api_key(key: str, name: str) -> None:
    # Sent in a header (X-API-Key or Authorization: Bearer): printable ASCII, no spaces.
    if len(key) < MIN_API_KEY_LENGTH:
        raise ValueError(f"{name} must be at least {MIN_API_KEY_LENGTH} characters")
    if not (key.isascii() and key.isprintable()) or any(c.isspace() for c in key):
        raise ValueError(f"{name} must be printable ASCII without spaces")


class SettingsError(Exception):
    """The settings are incomplete or wrong; the message names each setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Service
    service_name: str = "market-data-service"
    service_host: str = "127.0.0.1"  # loopback unless told otherwise
    port: Annotated[int, Field(gt=0, lt=65536)] = 8004
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"  # json: one JSON object per line
    # Off by default, being noise: httpx's line per REST request (every positions poll),
    # and uvicorn's access line per /health probe or /metrics scrape (observability/logs.py).
    log_http_client: bool = False
    log_probes: bool = False

    # Alpaca API
    alpaca_api_key: SecretStr
    alpaca_secret_key: SecretStr
    alpaca_base_url: str = "https://paper-api.alpaca.markets"
    alpaca_data_base_url: str = "https://data.alpaca.markets"
    alpaca_data_feed: str = "iex"
    alpaca_data_url: str | None = None  # full WebSocket URL; overrides the feed's URL
    # Crypto pairs (BTC/USD) stream from Alpaca's crypto feed, on a connection of their own:
    # us (Alpaca), us-1 (Kraken US), eu-1 (Kraken EU). ALPACA_CRYPTO_URL overrides the
    # URL; unset, it is the crypto path on ALPACA_DATA_URL's host when that is set.
    alpaca_crypto_feed: Annotated[str, Field(pattern=r"^[a-z0-9-]{1,16}$")] = "us"
    alpaca_crypto_url: str | None = None

    # Redis
    redis_host: str = "localhost"
    redis_port: Annotated[int, Field(gt=0, lt=65536)] = 6379
    redis_db: Annotated[int, Field(ge=0)] = 0
    redis_password: SecretStr | None = None
    redis_ssl: bool = False
    # redis://, rediss:// (TLS) or unix:// URL: overrides REDIS_HOST/PORT/DB/SSL (and
    # REDIS_PASSWORD when it holds a password). A secret, since it may hold one.
    redis_url: SecretStr | None = None
    redis_ssl_ca_certs: FilePath | None = None  # CA bundle (PEM) that signed Redis's cert
    # host:port,host:port of a Redis Cluster (a few seed nodes): replaces REDIS_HOST/PORT
    # and a REDIS_URL's address; password and TLS still come from the settings above.
    redis_cluster_nodes: str | None = None
    # Prefix of every key and channel ("paper" -> paper:price:AAPL), so deployments can
    # share one Redis; empty keeps the spec's names exactly (libs/market_data/keys.py).
    redis_namespace: Annotated[str, Field(pattern=r"^([A-Za-z0-9_.-]{1,32})?$")] = ""

    # HTTP API: when set, every endpoint but /health needs it (docs/security.md).
    market_data_api_key: SecretStr | None = None
    market_data_api_key_file: FilePath | None = None  # or read it from this file

    # Market data
    price_cache_ttl: Annotated[int, Field(gt=0)] = defaults.PRICE_CACHE_TTL
    # Longest the broker reader waits on Redis; past it the newest price per symbol is
    # held and written once Redis answers again (docs/architecture.md, "Redis faults").
    redis_write_timeout: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = (
        defaults.REDIS_WRITE_TIMEOUT
    )
    # How often the saved subscription set is checked against the wanted one and
    # rewritten if Redis lost or changed it.
    subscription_check_interval: Annotated[float, Field(gt=0, allow_inf_nan=False)] = (
        defaults.SUBSCRIPTION_CHECK_INTERVAL
    )

    # WebSocket
    max_reconnect_attempts: Annotated[int, Field(ge=1)] = defaults.MAX_RECONNECT_ATTEMPTS
    # Finite: "inf" parses as a float and would mean "never reconnect" without a word.
    reconnect_base_delay: Annotated[float, Field(gt=0, allow_inf_nan=False)] = (
        defaults.RECONNECT_BASE_DELAY
    )
    reconnect_max_delay: Annotated[float, Field(gt=0, allow_inf_nan=False)] = (
        defaults.RECONNECT_MAX_DELAY
    )

    # Positions (docs/positions.md): subscriptions that follow them, real-time P&L.
    # Unset: on when the stream is Alpaca's own (no ALPACA_DATA_URL) or ALPACA_BASE_URL is
    # set, so keys meant for another feed (the simulator) never go to Alpaca's trading API.
    position_sync_enabled: bool | None = None
    position_sync_interval: Annotated[float, Field(gt=0, allow_inf_nan=False)] = (
        defaults.POSITION_SYNC_INTERVAL
    )
    alpaca_rest_timeout: Annotated[float, Field(gt=0, allow_inf_nan=False)] = defaults.REST_TIMEOUT
    # No market data at all for this long while subscribed = a stalled feed: reconnect.
    # Doubles while fresh connections stay silent too (closed market), up to an hour;
    # 0 turns the data clock off. Per connection, so a quiet symbol never triggers it.
    stall_timeout: Annotated[float, Field(ge=0, allow_inf_nan=False)] = defaults.STALL_TIMEOUT
    # Gap fill (docs/architecture.md, "Gap fill"): after a reconnect, a Redis recovery or
    # a new subscription, read the latest quotes over REST. Unset: on when the stream is
    # Alpaca's own or ALPACA_DATA_BASE_URL is set (as POSITION_SYNC_ENABLED decides).
    gap_fill: bool | None = None
    gap_fill_timeout: Annotated[float, Field(gt=0, le=60, allow_inf_nan=False)] = (
        defaults.GAP_FILL_TIMEOUT
    )
    gap_fill_max_calls: Annotated[int, Field(ge=1, le=100)] = defaults.GAP_FILL_MAX_CALLS
    # Leader election (docs/leadership.md): "redis" makes the instances that share a Redis
    # (and namespace) one group, one leader streaming, standbys taking over; "off": alone.
    leader_election: Literal["off", "redis"] = defaults.LEADER_ELECTION
    # Seconds of lease (fractions allowed): a killed leader is replaced after about this.
    leader_lease_ttl: Annotated[float, Field(ge=0.3, le=60, allow_inf_nan=False)] = (
        defaults.LEADER_LEASE_TTL
    )
    # This instance's name in the election, /health and logs; unique per group.
    instance_id: Annotated[str, Field(pattern=INSTANCE_ID_PATTERN)] = Field(
        default_factory=default_instance_id
    )
    # Set by load_settings: variables that look like settings but are none.
    _unknown: tuple[UnknownSetting, ...] = PrivateAttr(default=())

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("leader_election", mode="before")
    @classmethod
    def _lower_election(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("alpaca_data_feed")
    @classmethod
    def _known_feed(cls, value: str) -> str:
        if value not in KNOWN_FEEDS:
            raise ValueError(f"unknown feed {value!r}; one of {', '.join(sorted(KNOWN_FEEDS))}")
        return value

    @field_validator("alpaca_data_url", "alpaca_crypto_url")
    @classmethod
    def _websocket_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("ws", "wss") or not parts.hostname:
                raise ValueError(f"must be a ws:// or wss:// URL, got {value!r}")
        return value

    @field_validator("alpaca_base_url", "alpaca_data_base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"must be an http(s):// URL, got {value!r}")
        return value.rstrip("/")

    @field_validator("alpaca_api_key", "alpaca_secret_key")
    @classmethod
    def _not_blank(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("is empty")
        return value

    @model_validator(mode="after")
    def _delays(self) -> Self:
        if self.reconnect_max_delay < self.reconnect_base_delay:
            raise ValueError("RECONNECT_MAX_DELAY must be >= RECONNECT_BASE_DELAY")
        return self

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            # from_url's message shows the URL with its password masked.
            RedisConnectionParams.from_url(value.get_secret_value())
        return value

    @field_validator("redis_ssl_ca_certs")
    @classmethod
    def _ca_bundle(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                ssl.create_default_context(cafile=str(value))
            except (ssl.SSLError, OSError) as exc:
                raise ValueError(f"{value} is not a readable PEM CA bundle: {exc}") from None
        return value

    @field_validator("market_data_api_key")
    @classmethod
    def _api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_api_key(value.get_secret_value(), "the key")
        return value

    @model_validator(mode="after")
    def _redis_and_api_key(self) -> Self:
        if self.market_data_api_key_file is not None:
            if self.market_data_api_key is not None:
                raise ValueError("set MARKET_DATA_API_KEY or MARKET_DATA_API_KEY_FILE, not both")
            try:
                key = self.market_data_api_key_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ValueError(f"MARKET_DATA_API_KEY_FILE cannot be read: {reason}") from None
            _check_api_key(key, "the key in MARKET_DATA_API_KEY_FILE")
            self.market_data_api_key = SecretStr(key)
        tls = self.redis_ssl
        if self.redis_url is not None:
            params = RedisConnectionParams.from_url(self.redis_url.get_secret_value())
            if self.redis_ssl and "redis_ssl" in self.model_fields_set and not params.ssl:
                raise ValueError("REDIS_SSL is true but REDIS_URL is not a rediss:// URL")
            if params.password is not None and self.redis_password is not None:
                raise ValueError("REDIS_PASSWORD and a password in REDIS_URL: set it once")
            tls = params.ssl
        if self.redis_ssl_ca_certs is not None and not tls:
            raise ValueError(
                "REDIS_SSL_CA_CERTS needs TLS: set REDIS_SSL=true or use a rediss:// REDIS_URL"
            )
        if self.redis_cluster_nodes is not None:
            # docs/cluster.md: host:port list, database 0, no socket. Leader election
            # works there too (docs/leadership.md, "On a Redis Cluster").
            self.cluster_params()
        return self

    def cluster_params(self) -> ClusterParams | None:
        """The Redis Cluster's seed nodes with the Redis credentials; None: one Redis."""
        if self.redis_cluster_nodes is None:
            return None
        return ClusterParams.parse(self.redis_cluster_nodes, self.redis_params())

    @property
    def position_sync_on(self) -> bool:
        """POSITION_SYNC_ENABLED, or when unset: see the comment on that setting."""
        if self.position_sync_enabled is not None:
            return self.position_sync_enabled
        return self.alpaca_data_url is None or "alpaca_base_url" in self.model_fields_set

    @property
    def gap_fill_on(self) -> bool:
        """GAP_FILL, or when unset: see the comment on that setting."""
        if self.gap_fill is not None:
            return self.gap_fill
        return self.alpaca_data_url is None or "alpaca_data_base_url" in self.model_fields_set

    @property
    def stream_url(self) -> str:
        return self.alpaca_data_url or feed_url(self.alpaca_data_feed)

    @property
    def crypto_stream_url(self) -> str:
        """ALPACA_CRYPTO_URL, else the crypto path next to ALPACA_DATA_URL, else Alpaca's."""
        if self.alpaca_crypto_url is not None:
            return self.alpaca_crypto_url
        if self.alpaca_data_url is not None:
            parts = urlsplit(self.alpaca_data_url)
            return f"{parts.scheme}://{parts.netloc}/v1beta3/crypto/{self.alpaca_crypto_feed}"
        return crypto_feed_url(self.alpaca_crypto_feed)

    @property
    def unknown_variables(self) -> tuple[UnknownSetting, ...]:
        """What :func:`load_settings` found ignored (:func:`unknown_settings`)."""
        return self._unknown

    def summary(self) -> str:
        """The effective configuration in one line, without a secret or a credential.

        The stream's scheme, host and port only (a path or query may carry a token), the
        Redis address without user or password, and whether the API key is set.
        """
        stream = urlsplit(self.stream_url)
        host = stream.hostname or "?"
        host = f"[{host}]" if ":" in host else host
        try:
            port = f":{stream.port}" if stream.port else ""
        except ValueError:  # not a number: the connection will say so, not this line
            port = ""
        redis = self.redis_params()
        if redis.unix_socket_path is not None:
            where = f"unix:{redis.unix_socket_path}?db={redis.db}"
        else:
            redis_host = f"[{redis.host}]" if ":" in redis.host else redis.host
            where = f"{redis_host}:{redis.port}/{redis.db}"
        items = {
            "feed": self.alpaca_data_feed,
            "stream": f"{stream.scheme}://{host}{port}",
            "redis": where
            if self.redis_cluster_nodes is None
            else f"cluster:{self.redis_cluster_nodes}",
            "redis_tls": _on(redis.ssl),
            "namespace": self.redis_namespace or "(none)",
            "price_cache_ttl": f"{self.price_cache_ttl}s",
            "api_key": _on(self.market_data_api_key is not None),
            "position_sync": _on(self.position_sync_on),
        }
        if self.leader_election != "off":
            items["leader_election"] = self.leader_election
            items["lease_ttl"] = f"{self.leader_lease_ttl:g}s"
            items["instance"] = self.instance_id
        return " ".join(f"{key}={value}" for key, value in items.items())

    def redis_params(self) -> RedisConnectionParams:
        password = self.redis_password.get_secret_value() if self.redis_password else None
        ca_certs = str(self.redis_ssl_ca_certs) if self.redis_ssl_ca_certs else None
        if self.redis_url is not None:
            params = RedisConnectionParams.from_url(self.redis_url.get_secret_value())
            return dataclasses.replace(
                params,
                password=params.password if params.password is not None else password,
                ssl_ca_certs=params.ssl_ca_certs or (ca_certs if params.ssl else None),
            )
        return RedisConnectionParams(
            host=self.redis_host,
            port=self.redis_port,
            db=self.redis_db,
            password=password,
            ssl=self.redis_ssl,
            ssl_ca_certs=ca_certs,
        )


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def unknown_settings(
    environ: Mapping[str, str] | None = None,
    env_files: Iterable[str | os.PathLike[str]] | None = None,
) -> list[UnknownSetting]:
    """Variables that look like settings but are none, in the environment and dotenv files
    (``settings_typos.find_unknown`` over this ``Settings``' field names). Defaults:
    ``os.environ`` and the settings' own ``.env``. Values are never kept, nor shown."""
    files = dotenv_files(Settings.model_config.get("env_file") if env_files is None else env_files)
    return find_unknown(
        frozenset(name.upper() for name in Settings.model_fields),
        os.environ if environ is None else environ,
        files,
        Settings.model_config.get("env_file_encoding") or "utf-8",
    )


def load_settings(**overrides: object) -> Settings:
    """Read the settings, or raise :class:`SettingsError` naming every bad or missing one.

    Variables that look like settings but are none are kept on the result
    (:attr:`Settings.unknown_variables`, logged by :func:`log_settings`), and named in the
    error too: a misspelt required setting shows up as missing.
    """
    env_file = overrides.get("_env_file", Settings.model_config.get("env_file"))
    unknown = unknown_settings(env_files=dotenv_files(env_file))
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        missing: list[str] = []
        invalid: list[str] = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper() or "settings"
            if error["type"] == "missing":
                missing.append(name)
            else:
                # error["input"] may be a secret: show the message, never the value.
                invalid.append(f"{name}: {error['msg']}")
        lines = []
        if missing:
            lines.append(f"missing settings: {', '.join(missing)}")
        lines.extend(f"invalid setting {item}" for item in invalid)
        if unknown:
            hints = ", ".join(finding.hint() for finding in unknown)
            lines.append(f"ignored, not settings: {hints}")
        raise SettingsError("; ".join(lines)) from None
    settings._unknown = tuple(unknown)
    return settings


def log_settings(settings: Settings, log: logging.Logger | None = None) -> None:
    """At startup: one WARNING per variable that is no setting, then the configuration.

    Names only, never a value; the configuration line is :meth:`Settings.summary`.
    """
    log = log or logger
    for finding in settings.unknown_variables:
        log.warning("%s", finding.message())
    log.info("configuration: %s", settings.summary())
