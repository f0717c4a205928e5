"""Prometheus metrics of the live stream (docs/streaming.md), read from the hub at scrape
time: clients connected by transport, messages and frames sent, updates coalesced for
slow clients, and slow clients closed, by cause. Label values are fixed sets."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from apps.market_data_service.observability.metrics import PREFIX
from apps.market_data_service.streaming import StreamHub

__all__ = ["StreamCollector"]

_STATES = ("idle", "connecting", "streaming")


class StreamCollector(Collector):
    """Metric families from :meth:`StreamHub.stats`."""

    def __init__(self, hub: StreamHub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        stats = self._hub.stats()
        clients = GaugeMetricFamily(
            PREFIX + "stream_clients",
            "Live stream clients connected, by transport (ws: /api/v1/stream, sse: "
            "/api/v1/stream/sse).",
            labels=["transport"],
        )
        for transport, count in sorted(stats.clients.items()):
            clients.add_metric([transport], count)
        yield clients
        state = GaugeMetricFamily(
            PREFIX + "stream_hub_state",
            "The stream hub's Redis reader: 1 for its state (idle: no client yet).",
            labels=["state"],
        )
        for name in _STATES:
            state.add_metric([name], 1 if stats.state == name else 0)
        yield state
        for name, doc, value in (
            ("stream_messages_sent", "Messages written to stream clients.", stats.messages_sent),
            ("stream_frames_sent", "Frames (several messages each) written to stream clients.",
             stats.frames_sent),
            ("stream_updates_coalesced",
             "Pending updates replaced by a newer one of the same symbol for a client that "
             "was behind (latest-value).", stats.coalesced),
            ("stream_updates", "Price updates the hub passed on to at least one client.",
             stats.updates),
            ("stream_resyncs", "Gaps the hub's reader announced to its clients.", stats.resyncs),
        ):  # fmt: skip
            yield CounterMetricFamily(PREFIX + name, doc, value=value)
        closed = CounterMetricFamily(
            PREFIX + "stream_slow_clients_closed",
            "Stream clients closed by the slow-client policy, by cause (send_blocked, "
            "behind, pending_bytes).",
            labels=["cause"],
        )
        for cause, count in stats.closed_slow.items():
            closed.add_metric([cause], count)
        yield closed
