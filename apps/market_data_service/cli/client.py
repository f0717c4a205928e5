"""What the client commands share: the API key, one request, one line per failure.

The key comes from the same places the service reads it (``MARKET_DATA_API_KEY`` or
``MARKET_DATA_API_KEY_FILE``, from the environment or a ``.env`` file in the working
directory: the sources of :class:`~apps.market_data_service.config.Settings`), unless
``--api-key`` gives one. It is sent as ``X-API-Key`` and never printed: messages name
where it came from instead.

A failed request is one line: the error body read by
:func:`~apps.market_data_service.cli.problems.problem_line` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from apps.market_data_service.cli.problems import problem_line
from apps.market_data_service.config import Settings

__all__ = [
    "API_KEY_HEADER",
    "EXIT_CODES_HELP",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_USAGE",
    "ApiKey",
    "CommandError",
    "Reply",
    "ServiceClient",
    "api_url",
    "failure_line",
    "problem_line",
    "resolve_api_key",
]

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1  # the service refused or failed the request, or is unreachable
EXIT_USAGE: Final = 2  # bad arguments or input, here or as the service judged it (400/422)
# Answers that mean "your input is wrong", whoever noticed: the same exit code as argparse.
_INPUT_STATUSES: Final = frozenset({400, 422})

EXIT_CODES_HELP: Final = """\
exit status:
  0  done (health and status: the service is healthy and every call succeeded)
  1  the service refused or failed a request (401 wrong or missing API key, 404, 409
     refused by the broker, 5xx), could not be reached, or is not healthy
  2  usage or input error: bad arguments, an invalid symbol (found here, or answered
     400/422 by the service), an unreadable MARKET_DATA_API_KEY_FILE
"""

API_KEY_HEADER: Final = "X-API-Key"
_KEY_HINT: Final = (
    "set MARKET_DATA_API_KEY (environment or ./.env) or MARKET_DATA_API_KEY_FILE, or pass --api-key"
)


class CommandError(Exception):
    """A client command failed: ``str(error)`` is the one line to print."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def api_url(value: str) -> str:
    """``--api``: an ``http(s)://host[:port]`` URL (an argparse ``type``)."""
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(value)
    return value.strip().rstrip("/")


# -- the API key --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApiKey:
    """A key to send, and where it came from (for messages; the key itself never is)."""

    value: str
    source: str

    def __repr__(self) -> str:
        return f"ApiKey(source={self.source!r})"


class _KeySettings(BaseSettings):
    """The API key settings, read from the service's own sources (its model config)."""

    model_config = SettingsConfigDict(**Settings.model_config)

    market_data_api_key: SecretStr | None = None
    market_data_api_key_file: str | None = None


def _checked(key: ApiKey) -> ApiKey:
    value = key.value
    if not (value.isascii() and value.isprintable()) or any(c.isspace() for c in value):
        raise CommandError(
            f"the API key from {key.source} must be printable ASCII without spaces", EXIT_USAGE
        )
    return key


def resolve_api_key(flag: str | None) -> ApiKey | None:
    """The key to send: ``--api-key`` (``flag``) wins; else the service's settings.

    ``None`` when no key is configured (an open service needs none). Raises
    :class:`CommandError` (exit 2) when the settings name a key file that cannot be read,
    or set both the key and the file, as the service would refuse to start.
    """
    if flag is not None:
        return _checked(ApiKey(flag.strip(), "--api-key")) if flag.strip() else None
    try:
        found = _KeySettings()
    except ValidationError as exc:  # the input may be the key: name the setting only
        names = sorted({str(error["loc"][0]).upper() for error in exc.errors() if error["loc"]})
        raise CommandError(f"invalid setting {', '.join(names)}", EXIT_USAGE) from None
    key = found.market_data_api_key.get_secret_value().strip() if found.market_data_api_key else ""
    file = (found.market_data_api_key_file or "").strip()
    if key and file:
        raise CommandError(
            "set MARKET_DATA_API_KEY or MARKET_DATA_API_KEY_FILE, not both (or pass --api-key)",
            EXIT_USAGE,
        )
    if file:
        source = f"MARKET_DATA_API_KEY_FILE ({file})"
        try:
            key = Path(file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CommandError(f"{source} cannot be read: {exc.strerror}", EXIT_USAGE) from None
        except UnicodeDecodeError:
            raise CommandError(f"{source} is not UTF-8 text", EXIT_USAGE) from None
        if not key:
            raise CommandError(f"{source} is empty", EXIT_USAGE)
        return _checked(ApiKey(key, source))
    return _checked(ApiKey(key, "MARKET_DATA_API_KEY")) if key else None


# -- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """An answer of the service: status, body (JSON, or the text when not JSON)."""

    status: int
    body: Any
    reason: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def failure_line(reply: Reply, key: ApiKey | None) -> str:
    """:func:`problem_line`, plus what to do about a 401 (never showing the key)."""
    line = problem_line(reply.status, reply.body, reply.reason)
    if reply.status == 401:
        line += f" (the key from {key.source})" if key is not None else f" ({_KEY_HINT})"
    return line


class ServiceClient:
    """Requests to the service at ``api`` with the API key; one line when one fails."""

    def __init__(self, api: str, key: ApiKey | None, timeout: float = 15.0) -> None:
        self.api = api
        self.key = key
        headers = {API_KEY_HEADER: key.value} if key is not None else {}
        self._http = httpx.Client(base_url=api, timeout=timeout, headers=headers)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: Any = None) -> Reply:
        """The answer, whatever its status; :class:`CommandError` when none came."""
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise CommandError(f"cannot reach the service at {self.api}: {exc}") from None
        try:
            parsed: Any = response.json()
        except ValueError:
            parsed = response.text
        return Reply(response.status_code, parsed, response.reason_phrase)

    def error(self, reply: Reply, doing: str = "") -> CommandError:
        """The :class:`CommandError` for a failed ``reply``: exit 2 for input errors."""
        line = failure_line(reply, self.key)
        code = EXIT_USAGE if reply.status in _INPUT_STATUSES else EXIT_FAILED
        return CommandError(f"{doing}: {line}" if doing else line, code)

    def call(self, method: str, path: str, body: Any = None, doing: str = "") -> Reply:
        """:meth:`request` that must succeed: raises :meth:`error` otherwise."""
        reply = self.request(method, path, body)
        if not reply.ok:
            raise self.error(reply, doing)
        return reply


@contextmanager
def service_client(api: str, key_flag: str | None) -> Iterator[ServiceClient]:
    """A :class:`ServiceClient` with the resolved key, closed at the end."""
    client = ServiceClient(api, resolve_api_key(key_flag))
    try:
        yield client
    finally:
        client.close()
