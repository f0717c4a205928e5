"""What every embedded ``redis-server`` child shares about its life, single or clustered.

Nothing may outlive us. :data:`reaper` stops, at a normal interpreter exit, whatever this
process started and did not stop (abrupt deaths are the spawner's part:
``libs.redis_embedded.spawner``). :class:`ContextManaged` turns ``start()``/``stop()``
into the sync and async context managers, and :class:`RedisChild` holds one spawned
process: launched, waited for until it answers, killed, terminated.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, Self

from libs.redis_client.exceptions import RedisClientError
from libs.redis_embedded.process import terminate, wait_ready
from libs.redis_embedded.spawner import spawn

__all__ = ["ContextManaged", "ExitReaper", "RedisChild", "reaper"]


class _Stoppable(Protocol):
    def stop(self) -> None: ...


class ExitReaper:
    """The servers and clusters still running (or holding a temp dir), stopped at exit."""

    def __init__(self) -> None:
        # Each with the pid that started it: a forked child inherits this registry, but
        # what is in it belongs to the parent.
        self._live: dict[_Stoppable, int] = {}
        self._lock = threading.Lock()

    def add(self, thing: _Stoppable) -> None:
        with self._lock:
            self._live[thing] = os.getpid()

    def discard(self, thing: _Stoppable) -> None:
        with self._lock:
            self._live.pop(thing, None)

    def stop_all(self) -> None:
        """Stop what this process started; errors are ignored (the interpreter is exiting)."""
        with self._lock:
            mine = [thing for thing, pid in self._live.items() if pid == os.getpid()]
        for thing in mine:
            with contextlib.suppress(Exception):
                thing.stop()


reaper = ExitReaper()
atexit.register(reaper.stop_all)


class ContextManaged:
    """``with``/``async with`` on top of ``start()`` (returning self) and ``stop()``."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Waiting for readiness blocks; the spawner thread keeps PDEATHSIG valid anyway.
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.to_thread(self.stop)


class RedisChild:
    """One spawned ``redis-server`` process (or none yet)."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Pid of the last process started (still set after ``kill()``); None once stopped."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """SIGKILL (a crash, for fault tests); starting again brings it back."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def _launch(
        self,
        command: list[str],
        *,
        binary: str,
        workdir: Path,
        log_path: Path,
        where: str,
        timeout: float,
        answers: Callable[[], bool],
    ) -> None:
        """Spawn ``command`` and wait until it answers (``process.wait_ready``'s errors)."""
        # Readiness is read from the log written after this point: a restart appends.
        log_start = log_path.stat().st_size if log_path.exists() else 0
        try:
            self._proc = spawn(command, cwd=workdir, log_path=log_path)
        except OSError as exc:
            raise RedisClientError(f"cannot run {binary}: {exc}") from exc
        wait_ready(
            self._proc,
            binary=binary,
            where=where,
            log_path=log_path,
            log_start=log_start,
            timeout=timeout,
            answers=answers,
        )

    def _terminate(self) -> None:
        """SIGTERM, SIGKILL after a grace period; forgets the process. Idempotent."""
        proc, self._proc = self._proc, None
        if proc is not None:
            terminate(proc)
