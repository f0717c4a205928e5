"""Spawning child processes that die with us, even when we die abruptly.

On Linux the child asks the kernel for SIGTERM when its parent dies
(``PR_SET_PDEATHSIG``), which also covers SIGKILL and crashes. The kernel ties that
signal to the *thread* that forked the child, not the process, so every child is
forked from one daemon thread that lives as long as the process; forking from an
``asyncio.to_thread`` worker would kill the child when the pool retires the thread.

Because the kernel guarantees that cleanup on Linux, the child gets its own process
group there: a terminal Ctrl-C reaches only us, and we stop the child after our own
graceful shutdown has written its last values. Elsewhere there is no such guarantee,
so the child stays in our process group and Ctrl-C reaches it directly.
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import ctypes.util
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["spawn"]

_IS_LINUX = sys.platform.startswith("linux")
_PR_SET_PDEATHSIG = 1
_SIGTERM = int(signal.SIGTERM)

T = TypeVar("T")


def spawn(command: list[str], *, cwd: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` with stdout and stderr appended to ``log_path``.

    Raises ``OSError`` when the command cannot be run.
    """
    parent_pid = os.getpid()

    def start() -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            return subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                close_fds=True,
                # Thread-unsafe in general because arbitrary Python runs after fork;
                # ours is two syscalls through a ctypes pointer resolved beforehand.
                preexec_fn=_child_setup(parent_pid),  # noqa: PLW1509
                # Own group only where PDEATHSIG guarantees cleanup (module docstring).
                process_group=0 if _prctl is not None else None,
            )

    return _spawner.run(start)


def _load_prctl() -> Callable[[int, int], int] | None:
    if not _IS_LINUX:
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        prctl: Callable[[int, int], int] = libc.prctl
    except (OSError, AttributeError):
        return None
    return prctl


_prctl = _load_prctl()


def _child_setup(parent_pid: int) -> Callable[[], None] | None:
    """``preexec_fn`` for the child: SIGTERM on parent death, or exit if already orphaned."""
    prctl = _prctl
    if prctl is None:
        return None

    def setup() -> None:
        # Runs between fork and exec: keep it to two syscalls.
        prctl(_PR_SET_PDEATHSIG, _SIGTERM)
        if os.getppid() != parent_pid:
            # The parent died before prctl took effect: nobody would ever signal us.
            os._exit(1)

    return setup


class _Spawner:
    """One daemon thread that forks every child, so PR_SET_PDEATHSIG means process death."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], concurrent.futures.Future[Any]]]
        self._queue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, fn: Callable[[], T]) -> T:
        if _prctl is None:
            return fn()
        with self._lock:
            thread = self._thread
            # is_alive() is False in a forked child, where the thread does not exist.
            if thread is None or not thread.is_alive():
                thread = threading.Thread(target=self._serve, name="redis-spawner", daemon=True)
                thread.start()
                self._thread = thread
        if threading.current_thread() is thread:
            return fn()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((fn, future))
        return future.result()

    def _serve(self) -> None:
        while True:
            fn, future = self._queue.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)


_spawner = _Spawner()
