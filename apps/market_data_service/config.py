"""Service settings, from the environment (and an optional ``.env``).

Names follow the spec's ``Settings`` plus the ones ``DESIGN.md`` adds. Secrets are
``SecretStr`` so they never appear in logs, reprs or API answers. A mistake fails at
startup with a message that names the setting (:func:`load_settings`).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.market_data import feed_url
from libs.redis_client import RedisConnectionParams

__all__ = ["KNOWN_FEEDS", "Settings", "SettingsError", "load_settings"]

KNOWN_FEEDS: Final = frozenset({"iex", "sip", "delayed_sip", "boats", "overnight", "test"})


class SettingsError(Exception):
    """The settings are incomplete or wrong; the message names each setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    # Service
    service_name: str = "market-data-service"
    service_host: str = "127.0.0.1"  # loopback unless told otherwise
    port: Annotated[int, Field(gt=0, lt=65536)] = 8004
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    # Alpaca API
    alpaca_api_key: SecretStr
    alpaca_secret_key: SecretStr
    alpaca_base_url: str = "https://paper-api.alpaca.markets"
    alpaca_data_base_url: str = "https://data.alpaca.markets"
    alpaca_data_feed: str = "iex"
    alpaca_data_url: str | None = None  # full WebSocket URL; overrides the feed's URL

    # Redis
    redis_host: str = "localhost"
    redis_port: Annotated[int, Field(gt=0, lt=65536)] = 6379
    redis_db: Annotated[int, Field(ge=0)] = 0
    redis_password: SecretStr | None = None
    redis_ssl: bool = False

    # Market data
    price_cache_ttl: Annotated[int, Field(gt=0)] = 300

    # WebSocket
    max_reconnect_attempts: Annotated[int, Field(ge=1)] = 10
    # Finite: "inf" parses as a float and would mean "never reconnect" without a word.
    reconnect_base_delay: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 5.0
    reconnect_max_delay: Annotated[float, Field(gt=0, allow_inf_nan=False)] = 300.0
    # No market data at all for this long while subscribed = a stalled feed: reconnect.
    # Doubles while fresh connections stay silent too (closed market), up to an hour;
    # 0 turns the data clock off. Per connection, so a quiet symbol never triggers it.
    stall_timeout: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 120.0

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("alpaca_data_feed")
    @classmethod
    def _known_feed(cls, value: str) -> str:
        if value not in KNOWN_FEEDS:
            raise ValueError(f"unknown feed {value!r}; one of {', '.join(sorted(KNOWN_FEEDS))}")
        return value

    @field_validator("alpaca_data_url")
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

    @property
    def stream_url(self) -> str:
        return self.alpaca_data_url or feed_url(self.alpaca_data_feed)

    def redis_params(self) -> RedisConnectionParams:
        password = self.redis_password.get_secret_value() if self.redis_password else None
        return RedisConnectionParams(
            host=self.redis_host,
            port=self.redis_port,
            db=self.redis_db,
            password=password,
            ssl=self.redis_ssl,
        )


def load_settings(**overrides: object) -> Settings:
    """Read the settings, or raise :class:`SettingsError` naming every bad or missing one."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
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
        raise SettingsError("; ".join(lines)) from None
