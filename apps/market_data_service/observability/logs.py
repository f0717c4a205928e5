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
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Final, Literal

from pydantic import SecretStr

if TYPE_CHECKING:
    from apps.market_data_service.config import Settings

__all__ = [
    "HTTP_CLIENT_LOGGERS",
    "LOG_FORMATS",
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
MASK: Final = "***"
# Shorter "secrets" would mask ordinary words all over the log; none that short is secret.
_MIN_SECRET_LENGTH: Final = 4
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_FIELDS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn: ANSI copy of message
)
# Loggers of the HTTP client (the broker's REST calls: one INFO line per request).
HTTP_CLIENT_LOGGERS: Final = ("httpx", "httpcore")
# Requests that probes and scrapers repeat every few seconds.
PROBE_PATHS: Final = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})
ACCESS_LOGGER: Final = "uvicorn.access"
# A %-conversion: optional (key), flags, width, precision, length, then the type.
_CONVERSION: Final = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[#0 +\-]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?"
    r"[hlL]?(?P<type>[diouxXeEfFgGcrsa%])"
)


class _Installed:
    """The handler :func:`configure_logging` put on the root logger, if any."""

    handler: logging.Handler | None = None


class _Formatter(logging.Formatter):
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret that contains another is masked whole.
        self._secrets = sorted(
            {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The event as ordered fields, every string already masked."""
        event: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redact(_message(record)),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in event:
                event[key] = self._clean(value)
        if record.exc_info:
            event["exception"] = self.redact(self.formatException(record.exc_info))
        if record.stack_info:
            event["stack"] = self.redact(self.formatStack(record.stack_info))
        return event

    def _clean(self, value: object) -> object:
        if isinstance(value, float):
            return _round(value)
        if value is None or isinstance(value, bool | int):
            return value
        if isinstance(value, str):
            return self.redact(value)
        return self.redact(_connection(value) or _text(value))


class JsonFormatter(_Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        # Masking happens on the values, before encoding: a secret with a quote or a
        # backslash in it is escaped in JSON text and would slip past a textual mask.
        return json.dumps(self.fields(record), ensure_ascii=False, default=str)


class TextFormatter(_Formatter):
    """``ts LEVEL logger: message key=value ...`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        event = self.fields(record)
        head = f"{event.pop('ts')} {event.pop('level'):<7} {event.pop('logger')}: "
        parts = [head + event.pop("message")]
        parts.extend(f"{key}={_text_value(value)}" for key, value in event.items())
        # One event per line, whatever the message or traceback holds.
        return " ".join(parts).replace("\r", "\\r").replace("\n", "\\n")


def _round(value: float) -> float:
    """Three decimals, or three significant digits below 1 (latencies): 4.918, 0.000123."""
    if not math.isfinite(value) or value == 0:
        return value
    return round(value, 3) if abs(value) >= 1 else float(f"{value:.3g}")


def _message(record: logging.LogRecord) -> str:
    """``record.getMessage()``, floats shown with ``%s``/``%r`` rounded (:func:`_round`).

    Only arguments: a float written into the text by the caller stays, and so does any
    other number (a ``Decimal`` price is exact). The record itself is left unchanged.
    """
    args = record.args
    if not args or not isinstance(record.msg, str):
        return record.getMessage()
    shown: tuple[object, ...] | Mapping[str, object]
    if isinstance(args, Mapping):
        keys = set()
        for match in _CONVERSION.finditer(record.msg):
            if match["type"] in "rsa" and match["key"] is not None:
                keys.add(match["key"])
        shown = {k: _round(v) if k in keys and isinstance(v, float) else v for k, v in args.items()}
    else:
        rounded = list(args)
        index = 0
        for match in _CONVERSION.finditer(record.msg):
            if match["type"] == "%":
                continue
            if match["width"] == "*" or match["precision"] == "*" or index >= len(rounded):
                return record.getMessage()  # not worth following: print as it is
            arg = rounded[index]
            if match["type"] in "rsa" and isinstance(arg, float):
                rounded[index] = _round(arg)
            index += 1
        shown = tuple(rounded)
    try:
        return record.msg % shown
    except (TypeError, ValueError, KeyError):
        return record.getMessage()


def _connection(value: object) -> str | None:
    """A websockets connection as ``peer (id)``; None for anything else.

    The websockets loggers put the connection on every record (``extra={"websocket":
    ...}``), as a weak proxy whose repr (``<...ServerConnection object at 0x...>``)
    tells nothing.
    """
    try:
        conn_id = getattr(value, "id", None)
    except ReferenceError:
        return "(closed connection)"  # the proxy outlived the connection
    if not isinstance(conn_id, uuid.UUID) or not hasattr(value, "remote_address"):
        return None
    try:
        peer = value.remote_address
    except Exception:  # the transport already gone ...: the id alone then
        peer = None
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        where = f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    else:
        where = str(peer) if peer else "unknown peer"
    return f"{where} ({conn_id.hex[:8]})"


def _text(value: object) -> str:
    try:
        return str(value)
    except ReferenceError:
        return "(gone)"  # a weak proxy whose object died


def _iso(created: float) -> str:
    stamp = datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


def _text_value(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c in text for c in ' "=') else text


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


class ProbeFilter(logging.Filter):
    """Leaves out uvicorn's access-log lines of :data:`PROBE_PATHS` (any query, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # uvicorn: '%s - "%s %s HTTP/%s" %d' % (client, method, path?query, version, status)
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            return args[2].partition("?")[0] not in PROBE_PATHS
        return True


# Query parameters that carry a credential: a stream ticket (docs/streaming.md). The key
# itself is never taken from a URL, but a client may still put it there by mistake.
_SECRET_QUERY: Final = re.compile(r"(?i)\b(ticket|api_key|apikey|key|token)=[^&\s\"]*")
ERROR_LOGGER: Final = "uvicorn.error"


# Request headers websockets logs at DEBUG (through uvicorn.error) as ("name", "value").
_SECRET_HEADERS: Final = frozenset({"x-api-key", "authorization", "cookie"})


class QueryRedactFilter(logging.Filter):
    """Masks credentials in what uvicorn logs: query strings (access lines, WebSocket
    lines) and, at DEBUG, the handshake's auth headers."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if (
            isinstance(args, tuple)
            and len(args) == 2
            and isinstance(args[0], str)
            and args[0].lower() in _SECRET_HEADERS
        ):
            record.args = (args[0], MASK)
        elif isinstance(args, tuple) and any(isinstance(a, str) and "=" in a for a in args):
            record.args = tuple(
                _SECRET_QUERY.sub(rf"\1={MASK}", a) if isinstance(a, str) else a for a in args
            )
        return True


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
