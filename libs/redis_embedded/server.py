"""``EmbeddedRedis``: the lifecycle of a private ``redis-server`` child.

Nothing may outlive us: ``stop()``/context managers stop it in order, and the
``atexit`` reaper (``libs.redis_embedded.lifecycle``) stops whatever is still running at
a normal interpreter exit. Abrupt deaths are the spawner's part
(``libs.redis_embedded.spawner``).
"""

from __future__ import annotations

import logging
import shutil
import socket
import tempfile
import threading
from pathlib import Path
from typing import Self

from libs.redis_client.exceptions import RedisClientError
from libs.redis_client.params import RedisConnectionParams
from libs.redis_embedded.binary import find_redis_server
from libs.redis_embedded.command import LOOPBACK, TlsFiles, server_command
from libs.redis_embedded.lifecycle import ContextManaged, RedisChild, reaper
from libs.redis_embedded.process import ExitedEarlyError, answers_ping

__all__ = ["EmbeddedRedis"]

logger = logging.getLogger(__name__)

_PORT_ATTEMPTS = 5


class EmbeddedRedis(ContextManaged, RedisChild):
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
        super().__init__()
        self._requested_port = port
        self._unix_socket = unix_socket
        self._binary = binary
        self._password = password
        self._tls = tls
        self._startup_timeout = startup_timeout
        self._port: int | None = None
        self._tmpdir: Path | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        if self._unix_socket:
            where = str(self._tmpdir / "redis.sock") if self._tmpdir else "unix socket"
        else:
            where = f"{LOOPBACK}:{self._port if self._port is not None else '?'}"
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
        return LOOPBACK

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
    def log_path(self) -> Path | None:
        return self._tmpdir / "redis.log" if self._tmpdir is not None else None

    # -- lifecycle

    def start(self) -> Self:
        """Start the server and wait until it answers; returns self."""
        with self._lock:
            if self.running:
                raise RedisClientError(f"{self!r} is already running")
            binary = self.binary
            if self._tmpdir is None:
                self._tmpdir = Path(tempfile.mkdtemp(prefix="redis-"))
            reaper.add(self)
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
            reaper.discard(self)

    def kill(self) -> None:
        """SIGKILL the server (a crash, for fault tests); ``restart()`` brings it back."""
        with self._lock:
            super().kill()

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
            except ExitedEarlyError as exc:
                if "already in use" not in exc.log_tail.lower():
                    raise
                failure = exc
                self._port = None
        assert failure is not None
        raise failure

    def _spawn_and_wait(self, binary: str) -> None:
        assert self._tmpdir is not None
        command = server_command(
            binary,
            workdir=self._tmpdir,
            port=self._port,
            unix_socket_path=self._socket_path() if self._unix_socket else None,
            password=self._password,
            tls=self._tls,
        )
        self._launch(
            command,
            binary=binary,
            workdir=self._tmpdir,
            log_path=self._tmpdir / "redis.log",
            where=self._where(),
            timeout=self._startup_timeout,
            answers=self._answers,
        )

    def _where(self) -> str:
        return f" on {self._socket_path()}" if self._unix_socket else f" on port {self._port}"

    def _answers(self) -> bool:
        address: str | tuple[str, int]
        if self._unix_socket:
            address = str(self._socket_path())
        else:
            assert self._port is not None
            address = (LOOPBACK, self._port)
        ca_file = self._tls.ca_cert_file if self._tls is not None else None
        return answers_ping(address, ca_file=ca_file)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port
