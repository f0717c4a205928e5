"""One spawned ``redis-server`` process: wait until it answers, or say why not; stop it."""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from libs.redis_client.exceptions import RedisClientError
from libs.redis_embedded.command import LOOPBACK

__all__ = ["ExitedEarlyError", "answers_ping", "terminate", "wait_ready"]

logger = logging.getLogger(__name__)

_STOP_GRACE = 5.0
_LOG_TAIL_LINES = 20
# Logged, lower-cased, once listening: "Ready to accept connections" (6.2 TCP, 7.x
# with a transport suffix) or "The server is now ready to accept connections at <sock>".
_READY_LINE = b"ready to accept connections"


class ExitedEarlyError(RedisClientError):
    """The server process exited before answering (e.g. its port was taken)."""

    def __init__(self, message: str, *, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail


def wait_ready(
    proc: subprocess.Popen[bytes],
    *,
    binary: str,
    where: str,
    log_path: Path,
    log_start: int,
    timeout: float,
    answers: Callable[[], bool],
) -> None:
    """Return once the server logged readiness after ``log_start`` and ``answers()``.

    Raises ``ExitedEarlyError`` if it exits first; kills it and raises
    ``RedisClientError`` after ``timeout`` seconds. ``where`` ends the messages.
    """
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        code = proc.poll()
        if code is not None:
            tail = _tail(log_path)
            raise ExitedEarlyError(
                f"redis-server {binary} exited with code {code} during startup"
                f"{where}; log tail:\n{tail}",
                log_tail=tail,
            )
        # A PING alone could be answered by a stranger that took our port first; our
        # own server logs this line only once it has bound its listeners.
        if _logged_since(log_path, log_start, _READY_LINE) and answers():
            return
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise RedisClientError(
                f"redis-server {binary} did not answer PING within "
                f"{timeout:g}s{where}; log tail:\n{_tail(log_path)}"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def answers_ping(address: str | tuple[str, int], *, ca_file: str | None) -> bool:
    """Whether the server replies to PING (a NOAUTH error counts: it is listening).

    ``address`` is a unix socket path or a (host, port) pair; with ``ca_file`` the
    connection is TLS, verified against that CA.
    """
    try:
        if isinstance(address, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        with sock:
            sock.settimeout(0.5)
            sock.connect(address)
            if ca_file is not None:
                context = ssl.create_default_context(cafile=ca_file)
                sock = context.wrap_socket(sock, server_hostname=LOOPBACK)
            with sock:
                sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                reply = sock.recv(64)
    except OSError:  # ssl.SSLError included
        return False
    return reply[:1] in (b"+", b"-") and not reply.startswith(b"-LOADING")


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited after a grace period."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=_STOP_GRACE)
        except subprocess.TimeoutExpired:
            logger.warning("redis-server pid %s ignored SIGTERM; killing it", proc.pid)
            proc.kill()
            proc.wait()


def _logged_since(path: Path, offset: int, needle: bytes) -> bool:
    try:
        with path.open("rb") as log:
            log.seek(offset)
            return needle in log.read().lower()
    except OSError:
        return False


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(no log: {exc})"
    return "\n".join(lines[-_LOG_TAIL_LINES:]) or "(log is empty)"
