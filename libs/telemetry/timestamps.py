"""RFC 3339 text to epoch seconds, cheaply enough to run once per received frame."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

__all__ = ["epoch_seconds", "instant_key", "now_rfc3339", "rfc3339"]

_MINUTES: dict[bytes, float] = {}
_MINUTES_LIMIT: Final = 4096


def epoch_seconds(stamp: bytes | str) -> float:
    """Seconds since the epoch of ``YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)``.

    The common Alpaca form (UTC, ``Z``) costs a dict lookup of its minute and one
    ``float()`` of the seconds; anything else goes through :mod:`datetime`. The result
    is a float: sub-microsecond digits are lost, which a latency measurement can afford.
    Raises :class:`ValueError` for text that is not a timestamp.
    """
    raw = stamp.encode() if isinstance(stamp, str) else stamp
    if raw[-1:] == b"Z" and raw[16:17] == b":" and len(raw) >= 20:
        minute = raw[:16]
        base = _MINUTES.get(minute)
        if base is None:
            base = _minute_base(minute)
        seconds = float(raw[17:-1])
        # float() also takes "inf", "nan" and exponents: one such value would poison a
        # histogram's sum for good.
        if not 0.0 <= seconds < 61.0:  # 60 is a leap second
            raise ValueError(f"not a timestamp: {raw!r}")
        return base + seconds
    return _slow(raw)


def _minute_base(minute: bytes) -> float:
    # Validates the shape, so a string that only looks like a timestamp fails here.
    base = datetime.strptime(minute.decode(), "%Y-%m-%dT%H:%M").replace(tzinfo=UTC).timestamp()
    if len(_MINUTES) >= _MINUTES_LIMIT:
        _MINUTES.clear()  # a replay walks many minutes; keep memory bounded
    _MINUTES[minute] = base
    return base


def _slow(raw: bytes) -> float:
    text = raw.decode(errors="replace").replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if dot:
        # datetime takes at most 6 fractional digits; Alpaca sends 9.
        digits = len(tail) - len(tail.lstrip("0123456789"))
        fraction, zone = tail[:digits], tail[digits:]
        text = f"{head}.{fraction[:6].ljust(6, '0')}{zone}"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def rfc3339(epoch: float) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ`` of epoch seconds: the one format of our own times."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def now_rfc3339() -> str:
    """The current wall-clock time as :func:`rfc3339` text."""
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def instant_key(stamp: str) -> str:
    """Text that sorts as the instants sort: ``YYYY-MM-DDTHH:MM:SS.fffffffffZ``, UTC.

    Alpaca trims trailing zeros from the fraction (``...:00Z``, ``...:00.5Z``), so raw
    strings of different lengths do not sort as their instants do; in this one
    fixed-width form they do. A stamp already in it (the hot path checks that inline:
    ``len(t) == 30``) is its own key; an offset (``+02:00``) is converted to UTC.
    Raises :class:`ValueError` for text that is not such a timestamp.
    """
    if stamp[-1:] == "Z":
        if len(stamp) == 20:
            return stamp[:19] + ".000000000Z"
        if stamp[19:20] == "." and 22 <= len(stamp) <= 30:
            return stamp[:20] + stamp[20:-1].ljust(9, "0") + "Z"
    return _slow_key(stamp)


def _slow_key(stamp: str) -> str:
    head, zone = stamp[:19], stamp[19:]
    fraction = ""
    if zone[:1] == ".":
        digits = len(zone) - 1 - len(zone[1:].lstrip("0123456789"))
        fraction, zone = zone[1 : 1 + digits], zone[1 + digits :]
    if not 0 < len(fraction) <= 9 and fraction:
        raise ValueError(f"not a timestamp: {stamp!r}")
    parsed = datetime.fromisoformat(head + (zone if zone not in ("", "Z") else "+00:00"))
    utc = parsed.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + fraction.ljust(9, "0") + "Z"
