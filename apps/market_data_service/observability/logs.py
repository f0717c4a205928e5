"""Logging for the service: one event per line, JSON or text, secrets masked.

``LOG_FORMAT=json`` gives one JSON object per line (``ts``, ``level``, ``logger``,
``message``, then any ``extra=`` fields such as ``cause``, then ``exception``), the
form log shippers index without parsing rules. ``text`` is the same event for a
person: ``ts LEVEL logger: message key=value ...``, a traceback folded onto the line.

Secrets are kept out by construction (``SecretStr`` settings, redacted URLs); the
formatters also mask any configured secret value that still slips into a message, as
a last line of defence.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Final, Literal

from pydantic import SecretStr

if TYPE_CHECKING:
    from apps.market_data_service.config import Settings

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "LogFormat",
    "TextFormatter",
    "configure_logging",
    "configure_logging_once",
    "env_log_format",
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
            "message": self.redact(record.getMessage()),
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
        if value is None or isinstance(value, bool | int | float):
            return value
        return self.redact(value if isinstance(value, str) else str(value))


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
