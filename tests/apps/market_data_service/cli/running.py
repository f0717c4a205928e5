"""Running the real ``market-data`` console script against a service served in the test."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

MARKET_DATA = str(Path(sys.executable).parent / "market-data")
CLI_TIMEOUT = 30.0


@dataclass(frozen=True)
class Ran:
    """A finished ``market-data`` run."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    @property
    def all(self) -> str:
        return self.out + self.err


def clean_environment() -> dict[str, str]:
    """The environment without settings of ours (no key, no Alpaca, no Redis), no colour."""
    cleaned = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(("ALPACA_", "REDIS_", "MARKET_DATA_", "FORCE_COLOR"))
        or name == "REDIS_SERVER_BIN"
    }
    cleaned.update(PYTHONUNBUFFERED="1", NO_COLOR="1")
    return cleaned


async def market_data(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = CLI_TIMEOUT
) -> Ran:
    """Run ``market-data args`` as a process without blocking the loop serving the API."""
    proc = await asyncio.create_subprocess_exec(
        MARKET_DATA,
        *args,
        cwd=cwd,
        env=dict(env if env is not None else clean_environment()),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())
