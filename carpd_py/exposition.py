"""Metric families and Prometheus's text exposition format (version 0.0.4), without
prometheus_client.

Importing any part of prometheus_client runs its package __init__, which imports its HTTP
servers (http.server, wsgiref, urllib, gzip, email, ...): about 2.7 MB of the daemon's
resident memory, for a format of a few lines. So the daemon builds its families with these
small classes, shaped like prometheus_client's (`GaugeMetricFamily(name, doc, value=None,
labels=None)`, `add_metric(labels, value)`, `samples`), and renders them itself. What it
renders is byte for byte what `prometheus_client.generate_latest` renders for the same
families (tests/test_exposition.py compares the two): counters named without `_total`, their
samples with it; label pairs sorted by name; HELP escaping backslash and newline; label values
escaping backslash, newline and double quote; numbers as Go prints them.

Pure: no I/O, no clock, no threads.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import ClassVar, NamedTuple, Protocol

__all__ = [
    "CONTENT_TYPE",
    "Collector",
    "CounterFamily",
    "Family",
    "GaugeFamily",
    "HistogramFamily",
    "Registry",
    "Sample",
    "go_float",
    "render",
]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Sample(NamedTuple):
    name: str
    labels: dict[str, str]
    value: float


class Family:
    """One metric family: its name, HELP text, TYPE and samples."""

    type: ClassVar[str] = "untyped"

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labels)
        self.samples: list[Sample] = []

    def _labels(self, values: Sequence[str]) -> dict[str, str]:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name}: labels {self.labelnames}, values {tuple(values)}")
        return dict(zip(self.labelnames, values, strict=True))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {len(self.samples)} samples)"


class GaugeFamily(Family):
    type = "gauge"

    def __init__(
        self,
        name: str,
        documentation: str,
        value: float | None = None,
        labels: Sequence[str] = (),
    ) -> None:
        super().__init__(name, documentation, labels)
        if value is not None:
            if labels:
                raise ValueError(f"{name}: a value or labels, not both")
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        self.samples.append(Sample(self.name, self._labels(labels), value))


class CounterFamily(Family):
    """A counter: the family is named without `_total`, its samples with it."""

    type = "counter"

    def __init__(
        self,
        name: str,
        documentation: str,
        value: float | None = None,
        labels: Sequence[str] = (),
    ) -> None:
        super().__init__(name.removesuffix("_total"), documentation, labels)
        if value is not None:
            if labels:
                raise ValueError(f"{name}: a value or labels, not both")
            self.add_metric([], value)

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        self.samples.append(Sample(self.name + "_total", self._labels(labels), value))


class HistogramFamily(Family):
    type = "histogram"

    def add_metric(
        self, labels: Sequence[str], buckets: Sequence[tuple[str, float]], sum_value: float
    ) -> None:
        """`buckets`: (le, cumulative count) pairs, the last one "+Inf" (it is the count)."""
        base = self._labels(labels)
        for le, count in buckets:
            self.samples.append(Sample(self.name + "_bucket", {**base, "le": le}, count))
        self.samples.append(Sample(self.name + "_count", dict(base), buckets[-1][1]))
        self.samples.append(Sample(self.name + "_sum", dict(base), sum_value))


class Collector(Protocol):
    def collect(self) -> Iterable[Family]: ...


class Registry:
    """The collectors of one endpoint, in the order their families are rendered."""

    def __init__(self, collectors: Iterable[Collector] = ()) -> None:
        self._collectors = list(collectors)

    def register(self, collector: Collector) -> None:
        self._collectors.append(collector)

    def collect(self) -> Iterator[Family]:
        for collector in self._collectors:
            yield from collector.collect()

    def render(self) -> bytes:
        return render(self.collect())


def go_float(value: float) -> str:
    """A number as Go's strconv prints it, as Prometheus and prometheus_client write them:
    "1.0", "0.005", "+Inf", "NaN", "1.5e+09" (Go switches to exponents sooner)."""
    d = float(value)
    if d == math.inf:
        return "+Inf"
    if d == -math.inf:
        return "-Inf"
    if math.isnan(d):
        return "NaN"
    s = repr(d)
    dot = s.find(".")
    if d > 0 and dot > 6:
        mantissa = f"{s[0]}.{s[1:dot]}{s[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return s


def _help(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n")


def _label_value(text: str) -> str:
    return text.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _line(sample: Sample) -> str:
    if sample.labels:
        pairs = ",".join(f'{k}="{_label_value(v)}"' for k, v in sorted(sample.labels.items()))
        return f"{sample.name}{{{pairs}}} {go_float(sample.value)}\n"
    return f"{sample.name} {go_float(sample.value)}\n"


def render(families: Iterable[Family]) -> bytes:
    """The text exposition format (0.0.4) of `families`, in their order."""
    out: list[str] = []
    for family in families:
        name = family.name + "_total" if family.type == "counter" else family.name
        out.append(f"# HELP {name} {_help(family.documentation)}\n")
        out.append(f"# TYPE {name} {family.type}\n")
        out.extend(_line(sample) for sample in family.samples)
    return "".join(out).encode("utf-8")
