"""Service settings, from the environment (and an optional ``.env``).

Names follow the spec's ``Settings`` plus the ones docs/architecture.md lists; the
fields live in one group per concern (apps/market_data_service/settings/) and
:class:`Settings` puts them together. Secrets are ``SecretStr`` so they never appear in
logs, reprs or API answers. A mistake fails at startup with a message that names the
setting (:func:`load_settings`). A variable that looks like a setting but is none
(``PRICE_CACHE_TTLL``) would be ignored silently: :func:`unknown_settings` finds them,
and :func:`log_settings` warns about each at startup, next to one line with the
effective configuration (:meth:`Settings.summary`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from apps.market_data_service.settings.alpaca import KNOWN_FEEDS, AlpacaSettings
from apps.market_data_service.settings.redis import RedisSettings
from apps.market_data_service.settings.service import MIN_API_KEY_LENGTH, ServiceSettings
from apps.market_data_service.settings.streaming import StreamingSettings
from apps.market_data_service.settings.summary import summary_line
from apps.market_data_service.settings_typos import UnknownSetting, dotenv_files, find_unknown
from libs.market_data import defaults
from libs.market_data.leadership.fencing import INSTANCE_ID_PATTERN, default_instance_id

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


class SettingsError(Exception):
    """The settings are incomplete or wrong; the message names each setting."""


# The groups in reverse: pydantic takes the fields of the last base first, so they keep
# the order docs and error messages list them in (service, broker, Redis, data path).
class Settings(StreamingSettings, RedisSettings, AlpacaSettings, ServiceSettings, BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

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

    @field_validator("leader_election", mode="before")
    @classmethod
    def _lower_election(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

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
    def unknown_variables(self) -> tuple[UnknownSetting, ...]:
        """What :func:`load_settings` found ignored (:func:`unknown_settings`)."""
        return self._unknown

    def summary(self) -> str:
        """The effective configuration in one line, without a secret or a credential
        (apps/market_data_service/settings/summary.py)."""
        return summary_line(self)


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
