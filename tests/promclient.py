"""Our metric families as prometheus_client's, so that its own exposition (text and
OpenMetrics) can be compared with what the daemon renders."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from carpd_py.exposition import Family, Registry


class AsClient(Collector):
    """prometheus_client's view of one of our registries: the same families, samples, order."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            metric = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                metric.add_sample(sample.name, dict(sample.labels), sample.value)
            yield metric


class Frozen:
    """A collector of fixed families (one collection, rendered twice)."""

    def __init__(self, families: list[Family]) -> None:
        self.families = families

    def collect(self) -> list[Family]:
        return self.families
