"""The Redis settings: one server (address, URL, TLS, password) or a cluster, the namespace."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path
from typing import Annotated, Self

from pydantic import BaseModel, Field, FilePath, SecretStr, field_validator, model_validator

from libs.redis_client import RedisConnectionParams
from libs.redis_client.cluster import ClusterParams

__all__ = ["RedisSettings"]


class RedisSettings(BaseModel):
    """Where the cache is, how to reach it, and the prefix of its keys."""

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

    @model_validator(mode="after")
    def _consistent(self) -> Self:
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
