"""The broker's settings: Alpaca's keys, REST base URLs, the stock and crypto feeds."""

from __future__ import annotations

from typing import Annotated, Final
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, field_validator

from libs.market_data import feed_url
from libs.market_data.stream.feeds import crypto_feed_url

__all__ = ["KNOWN_FEEDS", "AlpacaSettings"]

KNOWN_FEEDS: Final = frozenset({"iex", "sip", "delayed_sip", "boats", "overnight", "test"})


class AlpacaSettings(BaseModel):
    """Alpaca API credentials and where its streams and REST APIs are."""

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
