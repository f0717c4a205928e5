"""One ``redis-server`` started with ``cluster-enabled yes``, for the private cluster.

A dev/test tool like the rest of ``libs.redis_embedded``: the node keeps its port and
its work directory (``nodes.conf``, its identity in the cluster) across ``kill()`` and
``restart()``, so a killed primary can come back as itself. The command line is the
single server's (``command.server_command``) plus the cluster flags. With ``tls`` the
node speaks TLS only: clients, the cluster bus and replication (docs/cluster.md, "TLS").
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Final

from libs.redis_client.exceptions import RedisClientError
from libs.redis_client.params import RedisConnectionParams
from libs.redis_embedded.command import LOOPBACK, TlsFiles, server_command
from libs.redis_embedded.lifecycle import RedisChild
from libs.redis_embedded.process import answers_ping

__all__ = ["ClusterNodeProcess", "free_cluster_port"]

logger = logging.getLogger(__name__)

# A node listens on its port and on port + 10000 (the cluster bus).
BUS_OFFSET: Final = 10_000
_PORT_ATTEMPTS: Final = 50


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def free_cluster_port(taken: set[int]) -> int:
    """A loopback port that is free, and whose bus port (+10000) is free too."""
    for _ in range(_PORT_ATTEMPTS):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port: int = sock.getsockname()[1]
        if port + BUS_OFFSET > 65535 or port in taken or port + BUS_OFFSET in taken:
            continue
        if _bindable(port + BUS_OFFSET):
            return port
    raise RedisClientError("no free loopback port pair (port, port + 10000) for a cluster node")


class ClusterNodeProcess(RedisChild):
    """A cluster-enabled ``redis-server`` on a fixed loopback port, in its own directory."""

    def __init__(
        self,
        binary: str,
        port: int,
        workdir: Path,
        *,
        password: str | None = None,
        tls: TlsFiles | None = None,
        node_timeout_ms: int = 1000,
        startup_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.password = password
        self.tls = tls
        self.node_timeout_ms = node_timeout_ms
        self.startup_timeout = startup_timeout
        workdir.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.running else "stopped"
        return f"{type(self).__name__}({LOOPBACK}:{self.port}, {state})"

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def params(self) -> RedisConnectionParams:
        tls = self.tls
        return RedisConnectionParams(
            host=LOOPBACK,
            port=self.port,
            password=self.password,
            ssl=tls is not None,
            ssl_ca_certs=tls.ca_cert_file if tls is not None else None,
        )

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def start(self) -> None:
        """Start the node and wait until it answers."""
        if self.running:
            raise RedisClientError(f"{self!r} is already running")
        command = server_command(
            self.binary,
            workdir=self.workdir,
            port=self.port,
            unix_socket_path=None,
            password=self.password,
            tls=self.tls,
        )
        if self.password is not None:
            # A replica authenticates to its primary with the same password; the
            # config file (0600) already holds it, never argv.
            config = self.workdir / "redis.conf"
            with config.open("a") as handle:
                handle.write(config.read_text().replace("requirepass", "masterauth", 1))
        command += [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            str(self.node_timeout_ms),
            # Other shards keep serving while one has no primary: /health names the
            # missing one instead of the whole cluster answering CLUSTERDOWN.
            "--cluster-require-full-coverage",
            "no",
        ]
        if self.tls is not None:
            # The bus and the replication links on TLS too: with a TLS-only port (port 0)
            # the node announces its TLS port, and the bus is that port + 10000.
            command += ["--tls-cluster", "yes", "--tls-replication", "yes"]
        ca_file = self.tls.ca_cert_file if self.tls is not None else None
        self._launch(
            command,
            binary=self.binary,
            workdir=self.workdir,
            log_path=self.log_path,
            where=f" on port {self.port}",
            timeout=self.startup_timeout,
            answers=lambda: answers_ping((LOOPBACK, self.port), ca_file=ca_file),
        )

    def stop(self) -> None:
        """SIGTERM, SIGKILL after a grace period. Idempotent."""
        self._terminate()
