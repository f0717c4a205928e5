"""The log formatters: one event per line, JSON or text, secrets masked, floats rounded.

The event is the same in both: ``ts``, ``level``, ``logger``, ``message``, then any
``extra=`` fields, then ``exception``; every string masked before it is encoded
(observability/logs.py sets them up; its docstring tells the why).
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["MASK", "JsonFormatter", "TextFormatter"]

MASK: Final = "***"
# Shorter "secrets" would mask ordinary words all over the log; none that short is secret.
_MIN_SECRET_LENGTH: Final = 4
# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_RECORD_FIELDS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn: ANSI copy of message
)
# A %-conversion: optional (key), flags, width, precision, length, then the type.
_CONVERSION: Final = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?[#0 +\-]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?"
    r"[hlL]?(?P<type>[diouxXeEfFgGcrsa%])"
)


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
