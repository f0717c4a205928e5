"""The service's own settings: its name and address, logging, and the HTTP API key."""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import BaseModel, Field, FilePath, SecretStr, field_validator, model_validator

__all__ = ["MIN_API_KEY_LENGTH", "ServiceSettings", "check_api_key"]

MIN_API_KEY_LENGTH: Final = 16


def check_api_key(key: str, name: str) -> None:
    """Raise ValueError unless ``key`` can be the API key (``name`` says where it came from)."""
    # Sent in a header (X-API-Key or Authorization: Bearer): printable ASCII, no spaces.
    if len(key) < MIN_API_KEY_LENGTH:
        raise ValueError(f"{name} must be at least {MIN_API_KEY_LENGTH} characters")
    if not (key.isascii() and key.isprintable()) or any(c.isspace() for c in key):
        raise ValueError(f"{name} must be printable ASCII without spaces")


class ServiceSettings(BaseModel):
    """Where the service listens, how it logs, and the key its API asks for."""

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
    # False: every frame takes the Python path (docs/architecture.md, "Native quote path").
    market_data_native: bool = True

    # HTTP API: when set, every endpoint but /health needs it (docs/security.md).
    market_data_api_key: SecretStr | None = None
    market_data_api_key_file: FilePath | None = None  # or read it from this file

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("market_data_api_key")
    @classmethod
    def _api_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            check_api_key(value.get_secret_value(), "the key")
        return value

    @model_validator(mode="after")
    def _api_key_file(self) -> Self:
        if self.market_data_api_key_file is not None:
            if self.market_data_api_key is not None:
                raise ValueError("set MARKET_DATA_API_KEY or MARKET_DATA_API_KEY_FILE, not both")
            try:
                key = self.market_data_api_key_file.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ValueError(f"MARKET_DATA_API_KEY_FILE cannot be read: {reason}") from None
            check_api_key(key, "the key in MARKET_DATA_API_KEY_FILE")
            self.market_data_api_key = SecretStr(key)
        return self
