"""Hot-path-safe measurements: histograms a scrape reads, and a cheap timestamp parser.

Nothing here depends on a metrics library: the hot path updates plain numbers, and
an exporter (``apps.market_data_service.observability.metrics``) turns them into Prometheus text at
scrape time.
"""

from libs.telemetry.histogram import (
    LATENCY_BUCKETS,
    ROUND_TRIP_BUCKETS,
    Histogram,
)
from libs.telemetry.timestamps import epoch_seconds, instant_key, now_rfc3339, rfc3339

__all__ = [
    "LATENCY_BUCKETS",
    "ROUND_TRIP_BUCKETS",
    "Histogram",
    "epoch_seconds",
    "instant_key",
    "now_rfc3339",
    "rfc3339",
]
