"""The Grafana dashboard in ``dashboards/``: a dashboard model Grafana imports, whose
queries use only metric names the running service exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from apps.simulator import AlpacaSimulator
from tests.apps.market_data_service.observability.scrape import scrape
from tests.fixtures.service import Service
from tests.helpers import eventually, quote

DASHBOARD = Path(__file__).resolve().parents[4] / "dashboards" / "market-data.json"
# Keys of Grafana's dashboard JSON model (schemaVersion 39) that an import relies on.
DASHBOARD_KEYS = {"title", "uid", "schemaVersion", "panels", "templating", "time", "editable"}
PANEL_KEYS = {"id", "type", "title", "gridPos"}
QUERY_PANEL_KEYS = {"datasource", "targets", "fieldConfig", "options"}
PANEL_TYPES = {"row", "stat", "timeseries", "gauge", "table", "bargauge", "text"}
# Strings, label matchers and range selectors hold no metric names.
_NOT_NAMES = re.compile(r'"(?:[^"\\]|\\.)*"|\{[^}]*\}|\[[^\]]*\]')
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_METRIC_PREFIXES = ("market_data_", "process_", "python_")


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def metric_names(expr: str) -> set[str]:
    return {
        name
        for name in _IDENTIFIER.findall(_NOT_NAMES.sub(" ", expr))
        if name.startswith(_METRIC_PREFIXES)
    }


def test_dashboard_has_grafana_s_model_keys(dashboard: dict[str, Any]) -> None:
    assert set(dashboard) >= DASHBOARD_KEYS
    assert isinstance(dashboard["schemaVersion"], int) and dashboard["schemaVersion"] >= 36
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,40}", dashboard["uid"])
    assert dashboard["id"] is None  # Grafana assigns ids on import
    assert set(dashboard["time"]) == {"from", "to"}
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert "instance" in variables
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_every_panel_is_placed_and_queries_prometheus(dashboard: dict[str, Any]) -> None:
    for panel in dashboard["panels"]:
        assert set(panel) >= PANEL_KEYS, panel["title"]
        assert panel["type"] in PANEL_TYPES
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"}
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
    assert query_panels(dashboard)
    for panel in query_panels(dashboard):
        assert set(panel) >= QUERY_PANEL_KEYS, panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert target["datasource"] == panel["datasource"]
            assert metric_names(target["expr"]), f"no metric in {target['expr']!r}"


async def test_every_query_uses_only_metrics_the_service_exposes(
    dashboard: dict[str, Any], service: Service, simulator: AlpacaSimulator
) -> None:
    reply = await service.http.post("/api/v1/subscribe", json={"symbols": ["AAPL"]})
    assert reply.status_code == 201
    await simulator.send_quotes([quote("AAPL", "10.00", "10.02")])
    stream = service.stream
    await eventually(lambda: stream.get_connection_stats()["quotes_accepted"] == 1)
    assert await stream.sink.flush(5.0)
    exposed = (await scrape(service.http)).exposed
    used = {
        name
        for panel in query_panels(dashboard)
        for target in panel["targets"]
        for name in metric_names(target["expr"])
    }
    assert used - exposed == set()
    # And the dashboard shows the headline figures of the issue.
    for wanted in (
        "market_data_quotes_rejected_total",
        "market_data_cache_write_latency_seconds_bucket",
        "market_data_redis_write_round_trip_seconds_bucket",
        "market_data_reconnects_total",
        "market_data_last_update_age_seconds",
        "market_data_cache_hits_total",
        "market_data_events_published_total",
        "market_data_connection_state",
    ):
        assert wanted in used, wanted


def test_metric_names_are_found_in_promql() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (le) (rate(market_data_x_bucket{instance=~"a|b",'
        'le!="market_data_fake"}[5m]))) / ignoring(x) process_cpu_seconds_total'
    )
    assert metric_names(expr) == {"market_data_x_bucket", "process_cpu_seconds_total"}
