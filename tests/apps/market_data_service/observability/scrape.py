"""Helpers for the observability tests: scrape ``/metrics`` and read it back."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["Scrape", "scrape"]


@dataclass
class Scrape:
    """One parsed exposition: sample values by name and labels, and the family types."""

    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]
    types: dict[str, str]

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name{labels}``; fails the test if it is absent."""
        key = (name, frozenset(labels.items()))
        assert key in self.samples, f"{name}{labels} not exposed"
        return self.samples[key]

    def get(self, name: str, **labels: str) -> float | None:
        return self.samples.get((name, frozenset(labels.items())))

    def labelled(self, name: str, label: str) -> dict[str, float]:
        """``{label value: sample value}`` of every ``name`` sample."""
        return {
            dict(labels)[label]: value
            for (sample, labels), value in self.samples.items()
            if sample == name and label in dict(labels)
        }

    @property
    def names(self) -> set[str]:
        """Sample names present now."""
        return {name for name, _ in self.samples}

    @property
    def exposed(self) -> set[str]:
        """Every name a query may use, including families that have no sample yet."""
        suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
        derived = {
            family + suffix
            for family, kind in self.types.items()
            for suffix in suffixes.get(kind, ("",))
        }
        return self.names | derived


async def scrape(http: httpx.AsyncClient) -> Scrape:
    """GET /metrics and parse it with the Prometheus text parser."""
    reply = await http.get("/metrics")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(reply.text):
        types[family.name] = family.type
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return Scrape(samples=samples, types=types)
