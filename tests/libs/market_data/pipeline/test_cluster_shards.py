"""Primaries: a slot map that drops a primary while its writes are unanswered loses none.

A failover or a reshard closes the sink of a primary that left the slot map. Whatever
that sink sent without a reply yet (its SETs may never have landed) must go to the
slots' owners like what it held. The slot map can even flap: a node that has not heard
of a failover yet answers with the old map, and the sink that just took the rewrites
is closed again.
"""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from libs.redis_client.cluster import ClusterParams, Topology
from libs.redis_embedded.cluster import EmbeddedRedisCluster
from tests.fixtures.cluster_stream import KEYS, cached, cluster_writer, symbols
from tests.helpers import eventually, eventually_blocking

NAMES = symbols(30)


@pytest.mark.timeout(60)
async def test_writes_unanswered_when_a_primary_leaves_the_map_are_rewritten(
    redis_cluster: EmbeddedRedisCluster,
    cluster_params: ClusterParams,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with cluster_writer(cluster_params) as w:
        await w.frame(NAMES)
        assert await w.sink.flush(5)
        real = await w.client.topology()
        paused = real.owners[key_slot(KEYS.price_key(NAMES[0]).encode())]
        assert paused is not None
        other = next(a for a in real.primaries() if a != paused)
        # One node's stale answer: the paused primary's slots belong to another.
        stale = Topology(tuple(other if o == paused else o for o in real.owners))
        answers = [stale]
        ask = w.client.topology

        async def topology(*, refresh: bool = False) -> Topology:
            return answers.pop() if answers else await ask(refresh=refresh)

        monkeypatch.setattr(w.client, "topology", topology)
        node = next(n for n in redis_cluster.primaries() if (n.host, n.port) == paused)
        on_paused = [s for s in NAMES if cached(redis_cluster, s) and _owner(real, s) == paused]
        assert on_paused
        with redis_cluster.client(node) as admin:
            # Its SETs wait unanswered, past the 0.1 s a leaving sink gets to flush.
            admin.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
            try:
                await w.frame(NAMES)
                await w.sink.refresh()  # the stale map: the paused primary's sink closes
                assert not answers
                assert (node.host, node.port) not in w.sink.shards
            finally:
                admin.execute_command("CLIENT", "UNPAUSE")

        def newest() -> bool:
            return all((r := cached(redis_cluster, s)) and r.seq == w.n for s in on_paused)

        # The rewrite goes to the wrong primary (-MOVED), the real map comes back, and
        # the paused primary, now answering, takes its newest prices.
        await eventually_blocking(newest, timeout=20, what="the newest on the paused primary")
        await eventually(lambda: w.sink.pending_symbols == 0, timeout=10, what="nothing held")
        for symbol in NAMES:
            record = cached(redis_cluster, symbol)
            assert record is not None and record.seq == w.n, symbol


def _owner(topology: Topology, symbol: str) -> tuple[str, int] | None:
    return topology.owners[key_slot(KEYS.price_key(symbol).encode())]
