"""How to reach one Redis server, as plain data.

``RedisConnectionParams`` is the single description every component shares: the
redis-py client is built from ``redis_kwargs()``, the pipelined writer opens its own
socket from the same fields, and settings/CLI accept it as a URL. It holds the
password, so its ``repr`` and ``redacted_url()`` mask it; only ``to_url()`` and
``redis_kwargs()`` reveal it, because connecting needs it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

__all__ = ["DEFAULT_SOCKET_TIMEOUT", "REDACTED", "RedisConnectionParams"]

DEFAULT_SOCKET_TIMEOUT = 5.0
REDACTED = "***"

_SCHEMES = ("redis", "rediss", "unix")
_QUERY_KEYS = frozenset({"db", "username", "password", "socket_timeout", "ssl_ca_certs"})


@dataclass(frozen=True, repr=False)
class RedisConnectionParams:
    """Where a Redis server is and how to authenticate to it."""

    host: str = "localhost"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    unix_socket_path: str | None = None
    ssl: bool = False
    ssl_ca_certs: str | None = None
    socket_timeout: float = DEFAULT_SOCKET_TIMEOUT

    def __post_init__(self) -> None:
        # Fail where the configuration is written, not at the first command minutes later.
        if self.unix_socket_path is None and not 0 < self.port < 65536:
            raise ValueError(f"Redis port must be 1..65535, got {self.port!r}")
        if self.db < 0:
            raise ValueError(f"Redis db must be >= 0, got {self.db!r}")
        if not self.socket_timeout > 0:
            raise ValueError(f"socket_timeout must be > 0 seconds, got {self.socket_timeout!r}")
        if self.unix_socket_path is not None and self.ssl:
            raise ValueError("TLS (ssl=True / rediss://) cannot be used over a unix socket")

    def __repr__(self) -> str:
        parts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            shown = REDACTED if f.name == "password" and value is not None else repr(value)
            parts.append(f"{f.name}={shown}")
        return f"{type(self).__name__}({', '.join(parts)})"

    @classmethod
    def from_url(cls, url: str) -> RedisConnectionParams:
        """Parse ``redis://``, ``rediss://`` (TLS) or ``unix://`` URLs.

        ``redis://[[user]:password@]host[:port][/db][?db=N&socket_timeout=S]``,
        ``unix://[[user]:password@]/path/to/redis.sock[?db=N]``. User and password are
        percent-decoded. ``?db=`` and a ``/db`` path must agree when both are given.
        """
        try:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme not in _SCHEMES:
                raise ValueError(f"scheme must be one of {', '.join(_SCHEMES)}")
            query = _single_values(parts.query)
            username = _decoded(parts.username) or _decoded(query.get("username"))
            password = _decoded(parts.password) or _decoded(query.get("password"))
            kwargs: dict[str, Any] = {"username": username, "password": password}
            if "socket_timeout" in query:
                kwargs["socket_timeout"] = float(query["socket_timeout"])
            db_query = int(query["db"]) if "db" in query else None

            if scheme == "unix":
                if not parts.path:
                    raise ValueError("unix:// URL needs a socket path (unix:///path/redis.sock)")
                if "ssl_ca_certs" in query:
                    raise ValueError("ssl_ca_certs makes no sense over a unix socket")
                return cls(unix_socket_path=unquote(parts.path), db=db_query or 0, **kwargs)

            db_path_text = parts.path.strip("/")
            db_path = int(db_path_text) if db_path_text else None
            if db_path is not None and db_query is not None and db_path != db_query:
                raise ValueError(f"db given twice: /{db_path} and ?db={db_query}")
            db = db_path if db_path is not None else (db_query or 0)
            if "ssl_ca_certs" in query:
                if scheme != "rediss":
                    raise ValueError("ssl_ca_certs needs the rediss:// scheme")
                kwargs["ssl_ca_certs"] = query["ssl_ca_certs"]
            return cls(
                host=parts.hostname or "localhost",
                port=parts.port or 6379,
                db=db,
                ssl=scheme == "rediss",
                **kwargs,
            )
        except ValueError as exc:
            # The URL may hold a password: name the redacted form only.
            raise ValueError(f"invalid Redis URL {_redact_raw(url)!r}: {exc}") from None

    def to_url(self) -> str:
        """The URL form, password included; ``from_url(p.to_url()) == p``."""
        return self._url(self.password)

    def redacted_url(self) -> str:
        """The URL form with the password shown as ``***``; safe to log."""
        return self._url(None if self.password is None else REDACTED)

    def redis_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``redis.Redis(...)`` / ``redis.asyncio.Redis(...)``."""
        kwargs: dict[str, Any] = {
            "db": self.db,
            "username": self.username,
            "password": self.password,
            "socket_timeout": self.socket_timeout,
            "socket_connect_timeout": self.socket_timeout,
        }
        if self.unix_socket_path is not None:
            kwargs["unix_socket_path"] = self.unix_socket_path
        else:
            kwargs["host"] = self.host
            kwargs["port"] = self.port
            if self.ssl:
                kwargs["ssl"] = True
                if self.ssl_ca_certs is not None:
                    kwargs["ssl_ca_certs"] = self.ssl_ca_certs
        return kwargs

    def _url(self, password_text: str | None) -> str:
        userinfo = ""
        if self.username is not None or password_text is not None:
            userinfo = quote(self.username or "", safe="")
            if password_text is not None:
                # "***" must stay readable, a real password must be escaped.
                shown = (
                    password_text if password_text == REDACTED else quote(password_text, safe="")
                )
                userinfo += ":" + shown
            userinfo += "@"
        query: dict[str, str] = {}
        if self.socket_timeout != DEFAULT_SOCKET_TIMEOUT:
            query["socket_timeout"] = repr(self.socket_timeout)
        if self.unix_socket_path is not None:
            if self.db:
                query["db"] = str(self.db)
            return f"unix://{userinfo}{quote(self.unix_socket_path, safe='/')}{_query(query)}"
        if self.ssl_ca_certs is not None:
            query["ssl_ca_certs"] = self.ssl_ca_certs
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "rediss" if self.ssl else "redis"
        return f"{scheme}://{userinfo}{host}:{self.port}/{self.db}{_query(query)}"


def _single_values(query: str) -> dict[str, str]:
    values = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(values) - _QUERY_KEYS)
    if unknown:
        raise ValueError(
            f"unsupported query parameter(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(_QUERY_KEYS))}"
        )
    return {key: items[-1] for key, items in values.items()}


def _decoded(text: str | None) -> str | None:
    return unquote(text) if text else None


def _query(items: dict[str, str]) -> str:
    if not items:
        return ""
    return "?" + "&".join(f"{key}={quote(value, safe='/')}" for key, value in items.items())


def _redact_raw(url: str) -> str:
    """Mask the password of a URL that may not even parse."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    _, at, tail = rest.rpartition("@")
    # Whatever sits before "@" may be a password, even without a ":".
    masked = f"{REDACTED}@{tail}" if at else rest
    if "password=" in masked:
        head, _, after = masked.partition("password=")
        _, amp, remainder = after.partition("&")
        masked = f"{head}password={REDACTED}{amp}{remainder}"
    return f"{scheme}://{masked}"
