"""``EmbeddedRedisCluster``: a private Redis Cluster of ``redis-server`` children on loopback.

For ``market-data demo --cluster``, the benchmark and the tests (docs/cluster.md). The
primaries split the 16384 slots evenly (``CLUSTER ADDSLOTSRANGE``), meet, and get their
replicas (``CLUSTER REPLICATE``); ``start()`` returns once every node says
``cluster_state:ok``. Sharded pub/sub needs Redis 7+: the binary is the one on PATH (or
``$REDIS_SERVER_BIN``), never the bundled 6.2. The nodes die with us like the single
server (``spawner``), and ``stop()`` (or interpreter exit) removes their directory.
With ``tls`` every node is TLS-only (clients, bus, replication) and ``params`` carry the
CA; with ``password`` every node requires it and replicas use it (``masterauth``).
"""

from __future__ import annotations

import functools
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final, Self

import redis

from libs.redis_client.exceptions import RedisClientError
from libs.redis_client.params import RedisConnectionParams
from libs.redis_embedded import cluster_admin as admin
from libs.redis_embedded.binary import find_redis_server
from libs.redis_embedded.cluster_node import ClusterNodeProcess, free_cluster_port
from libs.redis_embedded.command import TlsFiles
from libs.redis_embedded.lifecycle import ContextManaged, reaper

__all__ = ["EmbeddedRedisCluster", "require_redis_7"]

logger = logging.getLogger(__name__)

_MIN_MAJOR: Final = 7


def require_redis_7(binary: str) -> None:
    """Raise unless ``binary`` is Redis 7+ (sharded pub/sub: SSUBSCRIBE, SPUBLISH)."""
    try:
        out = subprocess.run(
            [binary, "--version"], capture_output=True, timeout=10, check=False
        ).stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RedisClientError(f"cannot run {binary} --version: {exc}") from exc
    found = re.search(r"v=(\d+)\.", out)
    if found is None or int(found.group(1)) < _MIN_MAJOR:
        raise RedisClientError(
            f"{binary} is not Redis 7+ ({out.strip() or 'no version'}); a cluster with sharded "
            "pub/sub needs it: apt install redis-server, or set REDIS_SERVER_BIN"
        )


class EmbeddedRedisCluster(ContextManaged):
    """``primaries`` primaries with ``replicas`` replicas each, on free loopback ports."""

    def __init__(
        self,
        primaries: int = 3,
        replicas: int = 0,
        *,
        password: str | None = None,
        tls: TlsFiles | None = None,
        binary: str | None = None,
        node_timeout_ms: int = 1000,
        startup_timeout: float = 30.0,
    ) -> None:
        if primaries < 1 or replicas < 0:
            raise ValueError("at least one primary, and a non-negative replica count")
        self.primary_count = primaries
        self.replica_count = replicas
        self.password = password
        self.tls = tls
        self._binary = binary
        self.node_timeout_ms = node_timeout_ms
        self.startup_timeout = startup_timeout
        self.nodes: list[ClusterNodeProcess] = []
        self._tmpdir: Path | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.nodes_spec or 'stopped'})"

    # -- where it is ------------------------------------------------------------------

    @property
    def nodes_spec(self) -> str:
        """``host:port,...`` of every node: the value of ``REDIS_CLUSTER_NODES``."""
        return ",".join(node.address for node in self.nodes)

    @property
    def params(self) -> RedisConnectionParams:
        """Connection parameters of the first node (password and TLS included)."""
        return self.nodes[0].params

    def client(self, node: ClusterNodeProcess) -> redis.Redis:
        """A synchronous redis-py client on one node (close it after use)."""
        return admin.connect(node.params)

    def node_at(self, port: int) -> ClusterNodeProcess:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def primaries(self) -> list[ClusterNodeProcess]:
        """The nodes that are primaries now (asked of the nodes themselves)."""
        return [node for node in self.nodes if node.running and self._role(node) == "master"]

    def replicas_of(self, primary: ClusterNodeProcess) -> list[ClusterNodeProcess]:
        with self.client(primary) as client:
            primary_id = admin.node_id(client)
        found = []
        for node in self.nodes:
            if node is primary or not node.running:
                continue
            with self.client(node) as client:
                info = client.info("replication")
                if info.get("role") == "slave" and self._primary_id(client) == primary_id:
                    found.append(node)
        return found

    def owner_of(self, slot: int) -> ClusterNodeProcess:
        """The primary owning ``slot``, as the live nodes agree."""
        for node in self.nodes:
            if not node.running:
                continue
            with self.client(node) as client:
                port = admin.slot_owner_port(client, slot)
            if port is not None:
                return self.node_at(port)
        raise RedisClientError(f"no live node knows an owner of slot {slot}")

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Self:
        binary = self._binary or find_redis_server(tls=self.tls is not None)
        require_redis_7(binary)
        self._tmpdir = Path(tempfile.mkdtemp(prefix="redis-cluster-"))
        reaper.add(self)
        try:
            taken: set[int] = set()
            total = self.primary_count * (1 + self.replica_count)
            for index in range(total):
                port = free_cluster_port(taken)
                taken.update((port, port + 10_000))
                node = ClusterNodeProcess(
                    binary,
                    port,
                    self._tmpdir / f"node-{port}",
                    password=self.password,
                    tls=self.tls,
                    node_timeout_ms=self.node_timeout_ms,
                )
                self.nodes.append(node)
                node.start()
                logger.debug("cluster node %d on port %d", index, port)
            self._form()
        except BaseException:
            self.stop()
            raise
        logger.info("redis cluster started: %s", self.nodes_spec)
        return self

    def _form(self) -> None:
        clients = [self.client(node) for node in self.nodes]
        try:
            per = admin.SLOTS // self.primary_count
            for index, client in enumerate(clients[: self.primary_count]):
                # Distinct epochs before meeting, so no two primaries claim one config.
                admin.command(client, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
                last = admin.SLOTS - 1 if index == self.primary_count - 1 else (index + 1) * per - 1
                admin.add_slots(client, index * per, last)
            for node in self.nodes[1:]:
                admin.command(clients[0], "CLUSTER", "MEET", node.host, node.port)
            count = len(self.nodes)
            for client in clients:
                admin.wait_until(
                    "every node known",
                    functools.partial(_knows, client, count),
                    self.startup_timeout,
                )
            ids = [admin.node_id(client) for client in clients[: self.primary_count]]
            for offset, client in enumerate(clients[self.primary_count :]):
                primary_id = ids[offset % self.primary_count]
                admin.wait_until(
                    "replica sees its primary",
                    functools.partial(_replicate, client, primary_id),
                    self.startup_timeout,
                )
            self.wait_ok(self.startup_timeout)
            for node in self.nodes[self.primary_count :]:
                admin.wait_until(
                    f"replica {node.address} in sync",
                    functools.partial(self._linked, node),
                    self.startup_timeout,
                )
        finally:
            for client in clients:
                client.close()

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Wait until every running node says ``cluster_state:ok`` with all slots served."""
        count = len(self.nodes)
        for node in self.nodes:
            if not node.running:
                continue
            with self.client(node) as client:
                admin.wait_until(
                    f"cluster_state:ok on {node.address}",
                    functools.partial(admin.cluster_ok, client, count),
                    timeout,
                )

    def stop(self) -> None:
        """Stop every node and remove the work directory. Idempotent."""
        for node in self.nodes:
            node.stop()
        self.nodes = []
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        reaper.discard(self)

    # -- faults -----------------------------------------------------------------------

    def failover(self, replica: ClusterNodeProcess, *, takeover: bool = False) -> None:
        """Promote ``replica`` (``TAKEOVER`` when its primary is dead) and wait for it."""
        # With its primary dead past the node timeout the replica may have been promoted
        # already (automatic failover): then there is nothing to ask.
        if self._role(replica) != "master":
            with self.client(replica) as client:
                args = ["CLUSTER", "FAILOVER"] + (["TAKEOVER"] if takeover else [])
                admin.command(client, *args)
        admin.wait_until(
            f"{replica.address} promoted",
            lambda: self._role(replica) == "master",
            self.startup_timeout,
        )
        self.wait_ok(self.startup_timeout)

    def wait_owner(self, slot: int, node: ClusterNodeProcess, timeout: float = 30.0) -> None:
        """Wait until every running node names ``node`` as the owner of ``slot``."""

        def agreed() -> bool:
            for other in self.nodes:
                if other.running:
                    with self.client(other) as client:
                        if admin.slot_owner_port(client, slot) != node.port:
                            return False
            return True

        admin.wait_until(f"slot {slot} owned by {node.address}", agreed, timeout)

    def _role(self, node: ClusterNodeProcess) -> str:
        with self.client(node) as client:
            return str(client.info("replication").get("role"))

    def _linked(self, node: ClusterNodeProcess) -> bool:
        with self.client(node) as client:
            return bool(client.info("replication").get("master_link_status") == "up")

    @staticmethod
    def _primary_id(client: redis.Redis) -> str | None:
        for line in str(admin.command(client, "CLUSTER", "NODES")).splitlines():
            fields = line.split()
            if "myself" in fields[2]:
                return fields[3] if fields[3] != "-" else None
        return None


def _knows(client: redis.Redis, count: int) -> bool:
    return int(client.cluster("INFO")["cluster_known_nodes"]) == count


def _replicate(client: redis.Redis, primary_id: str) -> bool:
    admin.command(client, "CLUSTER", "REPLICATE", primary_id)
    return True
