"""One readable line for an error answer of the service (``problem_line``).

The service's error bodies are read in both shapes it has had: RFC 9457 problem details
(``detail``, ``errors``, ``refused_symbols``) and FastAPI's ``{"detail": ...}`` (a string,
or a list of validation errors); anything else (a proxy's HTML page, plain text) is
reduced to its text. The client commands print it (``cli/client.py``), the demo too.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from http import HTTPStatus
from typing import Final

__all__ = ["problem_line"]

_SHOWN_ITEMS: Final = 10  # symbols or validation errors named in one line, then "N more"
_MAX_TEXT: Final = 300  # characters of a non-JSON body shown


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _location(value: object) -> str:
    if isinstance(value, list | tuple):
        parts = [str(part) for part in value]
        if len(parts) > 1 and parts[0] in ("body", "query", "path", "header"):
            parts = parts[1:]  # "body.symbols.0" says less than "symbols.0"
        return ".".join(parts)
    return str(value) if value is not None else ""


def _message(value: object) -> str:
    text = _one_line(str(value))
    # pydantic prefixes what a validator raised; the user did not write a validator.
    return text.removeprefix("Value error, ")


def _errors(errors: object) -> list[tuple[str, str]]:
    """(location, message) of each item of a problem's ``errors`` or FastAPI's ``detail``."""
    if not isinstance(errors, list):
        return []
    found: list[tuple[str, str]] = []
    for error in errors:
        if isinstance(error, dict):
            location = _location(error.get("location", error.get("loc")))
            message = _message(error.get("message", error.get("msg", "")))
        else:
            location, message = "", _message(error)
        if location or message:
            found.append((location, message))
    return found


def _error_texts(errors: list[tuple[str, str]]) -> list[str]:
    return [f"{where}: {what}" if where and what else what or where for where, what in errors]


def _some(items: Sequence[str], separator: str = ", ") -> str:
    shown = separator.join(items[:_SHOWN_ITEMS])
    if len(items) > _SHOWN_ITEMS:
        shown += f"{separator}and {len(items) - _SHOWN_ITEMS:,} more"
    return shown


def _html_text(text: str) -> str:
    return _one_line(re.sub(r"<[^>]*>", " ", text))


def problem_line(status: int, body: object, reason: str = "") -> str:
    """One readable line for an error answer: ``HTTP 409: <detail> (refused: A, B)``.

    ``body`` is the parsed JSON, or the text when it is not JSON. Problem details give
    ``detail`` (else ``title``), then the ``errors`` it does not already say and the
    ``refused_symbols``; FastAPI's validation list is read as ``errors``.
    """
    if not reason:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = ""
    text = ""
    extras: list[str] = []
    if isinstance(body, dict):
        detail = body.get("detail")
        if isinstance(detail, str):
            text = _one_line(detail)
        elif isinstance(detail, list):  # FastAPI's request validation errors
            text = _some(_error_texts(_errors(detail)), "; ")
        elif detail is not None:
            text = _one_line(str(detail))
        if not text and isinstance(body.get("title"), str):
            text = _one_line(body["title"])
        # The errors the detail does not already say (it often is the first one's message).
        unsaid = [(w, m) for w, m in _errors(body.get("errors")) if not (m and m in text)]
        if unsaid:
            extras.append(_some(_error_texts(unsaid), "; "))
        refused = body.get("refused_symbols")
        if isinstance(refused, list) and refused:
            extras.append(f"refused: {_some([str(s) for s in refused])}")
    elif isinstance(body, str):
        text = _html_text(body) if body.lstrip().startswith("<") else _one_line(body)
        if len(text) > _MAX_TEXT:
            text = text[: _MAX_TEXT - 3] + "..."
    elif body is not None:
        text = _one_line(str(body))
    line = f"HTTP {status}: {text or reason or 'no details'}"
    if extras:
        line += f" ({'; '.join(extras)})"
    return line
