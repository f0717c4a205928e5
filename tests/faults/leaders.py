"""A group of ``market-data serve`` processes with ``LEADER_ELECTION=redis`` on the
harness's simulator and Redis, for the leadership fault tests (docs/leadership.md).

Each process logs to a file under the test's ``tmp_path`` (a pipe nobody reads would
fill up and stall it); :meth:`Group.stop` terminates what is still running and shows
the logs of a failed test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from tests.faults.harness import RATE, SYMBOLS, Harness, free_port
from tests.helpers import eventually

__all__ = ["Group", "Member", "cached_records"]

_DEADLINE = 20.0  # seconds: safety nets for a loaded machine, not assertions


@dataclass
class Member:
    """One service process of the group."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    http: httpx.AsyncClient

    async def health(self) -> dict[str, Any] | None:
        """``/health``'s body, or None while it does not answer."""
        try:
            reply = await self.http.get("/health", timeout=2.0)
        except httpx.HTTPError:
            return None
        body: dict[str, Any] = reply.json()
        return body

    async def role(self) -> str | None:
        body = await self.health()
        return None if body is None else str(body.get("role"))

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class Group:
    harness: Harness
    directory: Path
    env: dict[str, str] = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)

    def start(self, name: str, **env: str) -> Member:
        """Start one instance named ``name`` (its INSTANCE_ID)."""
        port = free_port()
        environment = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("ALPACA_", "REDIS_"))},
            "ALPACA_API_KEY": self.harness.sim.config.api_key,
            "ALPACA_SECRET_KEY": self.harness.sim.config.secret_key,
            "ALPACA_DATA_URL": self.harness.sim.url(),
            "REDIS_HOST": self.harness.redis_server.host,
            "REDIS_PORT": str(self.harness.redis_server.port),
            "PORT": str(port),
            "LEADER_ELECTION": "redis",
            "INSTANCE_ID": name,
            "RECONNECT_BASE_DELAY": "0.1",
            "RECONNECT_MAX_DELAY": "0.5",
            **self.env,
            **env,
        }
        log = self.directory / f"{name}.log"
        command = [str(Path(sys.executable).parent / "market-data"), "serve"]
        with log.open("ab") as out:
            process = subprocess.Popen(
                command, env=environment, cwd=self.directory, stdout=out, stderr=subprocess.STDOUT
            )
        member = Member(
            name, port, process, log, httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")
        )
        self.members.append(member)
        return member

    async def wait(
        self, member: Member, role: str, *, healthy: bool = True, within: float = _DEADLINE
    ) -> dict[str, Any]:
        """Poll ``member``'s /health until it has ``role`` (and is healthy); its body."""
        deadline = time.monotonic() + within
        body: dict[str, Any] | None = None
        while True:
            body = await member.health()
            if (
                body is not None
                and body.get("role") == role
                and (not healthy or body["status"] == "healthy")
            ):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(f"{member.name} never became {role}: {body}\n{self.logs()}")
            await asyncio.sleep(0.05)

    async def leader_and_standby(self) -> tuple[Member, Member]:
        """Start ``a``, wait until it leads, then ``b``, until it stands by."""
        first = self.start("a")
        await self.wait(first, "leader", healthy=False)
        second = self.start("b")
        await self.wait(second, "standby")
        return first, second

    async def stream(self, via: Member) -> None:
        """Subscribe every symbol through ``via``, stream, and wait until all are cached."""
        reply = await via.http.post("/api/v1/subscribe", json={"symbols": SYMBOLS})
        assert reply.status_code == 201, reply.text
        self.harness.sim.set_rate(RATE, batch_size=5)
        await eventually(
            lambda: all(r is not None for r in cached_records(self.harness, SYMBOLS).values()),
            timeout=10,
            what="prices cached",
        )

    async def roles(self) -> dict[str, str | None]:
        found = await asyncio.gather(*(m.role() for m in self.members if m.alive()))
        names = [m.name for m in self.members if m.alive()]
        return dict(zip(names, found, strict=True))

    def logs(self, tail: int = 40) -> str:
        parts = []
        for member in self.members:
            lines = member.log.read_text(errors="replace").splitlines()[-tail:]
            parts.append(f"--- {member.name} ---\n" + "\n".join(lines))
        return "\n".join(parts)

    async def stop(self) -> None:
        for member in self.members:
            with contextlib.suppress(ProcessLookupError):
                member.signal(signal.SIGCONT)  # a paused one must hear the SIGTERM
            if member.alive():
                member.process.terminate()
        for member in self.members:
            try:
                await asyncio.to_thread(member.process.wait, _DEADLINE)
            except subprocess.TimeoutExpired:
                member.process.kill()
                await asyncio.to_thread(member.process.wait, _DEADLINE)
            await member.http.aclose()


def cached_records(harness: Harness, symbols: list[str]) -> dict[str, dict[str, Any] | None]:
    """``price:{SYM}`` of each symbol, parsed (None where missing)."""
    with redis.Redis(**harness.redis_server.params.redis_kwargs()) as client:
        raws = client.mget([f"price:{s}" for s in symbols])
    return {
        s: None if raw is None else json.loads(raw) for s, raw in zip(symbols, raws, strict=True)
    }
