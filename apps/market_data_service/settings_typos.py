"""Variables that look like settings but are none: typos that would pass silently.

``PRICE_CACHE_TTLL=5`` in ``.env`` would leave the default in force without a word. A
name counts when it starts like a setting (``ALPACA_``, ``REDIS_``, ``PRICE_`` ...: the
first word of any setting's name) or is a near miss of one (``LOGLEVEL``); each finding
names the setting it most resembles (difflib). Only names are kept: a value may be a
secret (``ALPACA_SECRET_KEYY=...``).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Final

from dotenv import dotenv_values

__all__ = ["UnknownSetting", "dotenv_files", "find_unknown"]


@dataclasses.dataclass(frozen=True)
class UnknownSetting:
    """A variable that looks like a setting but is none, so nothing reads it: a typo.

    Only its name: the value may be a secret (``ALPACA_SECRET_KEYY=...``).
    """

    name: str  # as written
    source: str  # "the environment" or the dotenv file
    suggestion: str | None  # the setting it most resembles, if any does

    def hint(self) -> str:
        """``NAME in SOURCE (did you mean SETTING?)``."""
        guess = f"did you mean {self.suggestion}?" if self.suggestion else "no setting like it"
        return f"{self.name} in {self.source} ({guess})"

    def message(self) -> str:
        """The startup warning."""
        guess = (
            f"did you mean {self.suggestion}?"
            if self.suggestion
            else "no setting resembles it (README, Configuration)"
        )
        return f"unknown setting {self.name} in {self.source} is ignored; {guess}"


# Read by other parts of the project, not by Settings (libs/redis_embedded/binary.py).
_OTHER_KNOWN: Final = frozenset({"REDIS_SERVER_BIN"})
# Kubernetes sets these for every service of the namespace (a service named "redis" or
# "market-data" gives REDIS_SERVICE_HOST, MARKET_DATA_PORT=tcp://..., ...): not typos.
_SERVICE_LINK: Final = re.compile(
    r"[A-Z0-9_]+_(SERVICE_HOST|SERVICE_PORT(_[A-Z0-9_]+)?|PORT_\d+_(TCP|UDP|SCTP)(_[A-Z]+)?)"
)
_SERVICE_LINK_URL: Final = re.compile(r"(tcp|udp|sctp)://", re.IGNORECASE)
_PREFIXED_CUTOFF: Final = 0.6  # difflib ratio for a hint when the prefix is ours
_UNPREFIXED_CUTOFF: Final = 0.85  # without our prefix only a near miss counts (LOGLEVEL)


def _service_link(name: str, value: str | None) -> bool:
    if _SERVICE_LINK.fullmatch(name):
        return True
    return name.endswith("_PORT") and value is not None and bool(_SERVICE_LINK_URL.match(value))


def _finding(
    names: Collection[str], prefixes: tuple[str, ...], name: str, value: str | None, source: str
) -> UnknownSetting | None:
    upper = name.upper()
    if upper in names or upper in _OTHER_KNOWN or _service_link(upper, value):
        return None
    ours = upper.startswith(prefixes)
    cutoff = _PREFIXED_CUTOFF if ours else _UNPREFIXED_CUTOFF
    close = difflib.get_close_matches(upper, names, n=1, cutoff=cutoff)
    if not ours and not close:
        return None
    return UnknownSetting(name, source, close[0] if close else None)


def dotenv_files(env_file: object) -> list[Path]:
    if env_file is None:
        return []
    if isinstance(env_file, str | os.PathLike):
        env_file = [env_file]
    if not isinstance(env_file, Iterable):
        return []
    paths = (Path(item).expanduser() for item in env_file if isinstance(item, str | os.PathLike))
    return [path for path in paths if path.is_file()]


def find_unknown(
    names: Collection[str], environ: Mapping[str, str], files: Iterable[Path], encoding: str
) -> list[UnknownSetting]:
    """The variables of ``environ`` and the dotenv ``files`` that are none of ``names``
    (upper-case setting names) but look like one."""
    # The first word of every setting's name: ALPACA_, REDIS_, MARKET_, PRICE_ ...
    prefixes = tuple(sorted({name.split("_")[0] + "_" for name in names if "_" in name}))
    found = [
        _finding(names, prefixes, name, value, "the environment")
        for name, value in sorted(environ.items())
    ]
    for path in files:
        try:
            entries = dotenv_values(path, encoding=encoding, interpolate=False)
        except (OSError, UnicodeDecodeError):
            continue  # reading the settings fails on it too, naming it
        found.extend(
            _finding(names, prefixes, name, value, str(path))
            for name, value in sorted(entries.items())
        )
    return [finding for finding in found if finding is not None]
