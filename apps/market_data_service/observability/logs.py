"""Logging for the service: one event per line, JSON or text, secrets masked.

``LOG_FORMAT=json`` gives one JSON object per line (``ts``, ``level``, ``logger``,
``message``, then any ``extra=`` fields such as ``cause``, then ``exception``), the
form log shippers index without parsing rules. ``text`` is the same event for a
person: ``ts LEVEL logger: message key=value ...``, a traceback folded onto the line.

Secrets are kept out by construction (``SecretStr`` settings, redacted URLs); the
formatters also mask any configured secret value that still slips into a message, as
a last line of defence. Floats (``delay=4.91759836753689``) are printed rounded to
three decimals (three significant digits below 1), in the fields and in the message
arguments shown with ``%s``; ``Decimal`` prices are exact and left as they are. A
websockets connection (its loggers add one as ``websocket``) is shown as its peer
address and connection id instead of an object repr.

At startup (:func:`log_startup`) the noise is turned down: httpx and httpcore log from
WARNING up (``LOG_HTTP_CLIENT=true`` restores their line per request), and uvicorn's
access log leaves out health probes and metric scrapes (``LOG_PROBES=true`` keeps them).

The formatters are in ``log_format.py``, the filters on uvicorn's loggers in
``log_filters.py``; this module sets them up.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from typing import IO, TYPE_CHECKING, Final, Literal

from pydantic import SecretStr

from apps.market_data_service.observability.log_filters import (
    ACCESS_LOGGER,
    ERROR_LOGGER,
    PROBE_PATHS,
    ProbeFilter,
    QueryRedactFilter,
)
from apps.market_data_service.observability.log_format import MASK, JsonFormatter, TextFormatter

if TYPE_CHECKING:
    from apps.market_data_service.config import Settings

__all__ = [
    "ACCESS_LOGGER",
    "HTTP_CLIENT_LOGGERS",
    "LOG_FORMATS",
    "MASK",
    "PROBE_PATHS",
    "JsonFormatter",
    "LogFormat",
    "ProbeFilter",
    "QueryRedactFilter",
    "TextFormatter",
    "configure_logging",
    "configure_logging_once",
    "env_log_format",
    "log_startup",
    "quiet_logs",
    "settings_secrets",
]

LogFormat = Literal["text", "json"]
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("text", "json")
# Loggers of the HTTP client (the broker's REST calls: one INFO line per request).
HTTP_CLIENT_LOGGERS: Final = ("httpx", "httpcore")


class _Installed:
    """The handler :func:`configure_logging` put on the root logger, if any."""

    handler: logging.Handler | None = None


def configure_logging(
    level: str = "INFO",
    log_format: LogFormat = "text",
    *,
    secrets: Iterable[str] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Send every log event to ``stream`` (stderr) in ``log_format``, from ``level`` up.

    Calling it again replaces the handler it installed before; handlers installed by
    others (pytest's, a host application's) are left alone.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {log_format!r}")
    formatter = (JsonFormatter if log_format == "json" else TextFormatter)(secrets)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    if _Installed.handler is not None:
        root.removeHandler(_Installed.handler)
    root.addHandler(handler)
    root.setLevel(level.upper())
    _Installed.handler = handler
    return handler


def configure_logging_once(
    level: str, log_format: LogFormat, *, secrets: Iterable[str] = ()
) -> bool:
    """Configure logging unless someone else already has; True if this call did.

    For the app's startup: under ``market-data serve`` it refreshes what the CLI set
    up, under bare ``uvicorn ...:app`` it is the only setup, and inside a host that
    configured logging itself (a test runner) it stays out of the way.
    """
    root = logging.getLogger()
    if any(handler is not _Installed.handler for handler in root.handlers):
        return False
    configure_logging(level, log_format, secrets=secrets)
    return True


def env_log_format(default: LogFormat = "text") -> LogFormat:
    """``LOG_FORMAT`` from the environment for commands that load no settings."""
    value = os.environ.get("LOG_FORMAT", default).strip().lower()
    for known in LOG_FORMATS:
        if value == known:
            return known
    return default


def settings_secrets(settings: Settings) -> list[str]:
    """Every ``SecretStr`` value in ``settings`` (ones added later too), for masking."""
    values = (getattr(settings, name) for name in type(settings).model_fields)
    secrets = [value.get_secret_value() for value in values if isinstance(value, SecretStr)]
    # The Redis password also stands alone inside REDIS_URL, which could be logged apart.
    password = settings.redis_params().password
    if password:
        secrets.append(password)
    return secrets


def quiet_logs(*, http_client: bool = False, probes: bool = False) -> None:
    """Turn the third-party noise down, unless asked for it; calling again replaces it.

    ``http_client``: httpx and httpcore at the root's level again (else WARNING: no line
    per REST request). ``probes``: uvicorn's access log keeps probes and scrapes (else
    :class:`ProbeFilter` leaves them out; other requests are still logged).
    """
    for name in HTTP_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if http_client else logging.WARNING)
    access = logging.getLogger(ACCESS_LOGGER)
    for installed in [f for f in access.filters if isinstance(f, ProbeFilter)]:
        access.removeFilter(installed)
    if not probes:
        access.addFilter(ProbeFilter())
    for name in (ACCESS_LOGGER, ERROR_LOGGER):
        logger = logging.getLogger(name)
        if not any(isinstance(f, QueryRedactFilter) for f in logger.filters):
            logger.addFilter(QueryRedactFilter())


def log_startup(settings: Settings) -> None:
    """The app's startup, once logging is set up: quiet the noise, then warn about
    variables that are no setting and log the effective configuration (one line)."""
    from apps.market_data_service.config import log_settings

    quiet_logs(http_client=settings.log_http_client, probes=settings.log_probes)
    log_settings(settings)
    from libs.market_data import native

    path = native.path()  # docs/architecture.md, "Native quote path"
    log = logging.getLogger("apps.market_data_service")
    (log.info if path == "native" else log.warning)("quote path: %s", path)
