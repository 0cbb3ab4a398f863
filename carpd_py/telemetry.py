"""Counters and histograms kept by the supervisor, published as frozen snapshots.

Only the trio side writes; readers (the metrics thread, the control socket) get a snapshot,
an immutable value swapped in by one reference assignment, so a slow reader never holds up
the supervisor and never sees half an update.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# Seconds; probes answer in ms on a LAN, a poll of the host takes a few ms to ~100 ms.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class HistogramSnapshot:
    buckets: tuple[float, ...]
    counts: tuple[int, ...]  # per bucket, not cumulative; one more for +Inf
    total: float
    count: int


@dataclass
class Histogram:
    buckets: tuple[float, ...] = DURATION_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(DURATION_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        # the first bucket whose bound is >= value (le); past the last: +Inf
        self.counts[bisect_left(self.buckets, value)] += 1
        self.total += value
        self.count += 1

    def snapshot(self) -> HistogramSnapshot:
        return HistogramSnapshot(self.buckets, tuple(self.counts), self.total, self.count)


@dataclass(frozen=True)
class TelemetrySnapshot:
    demotions: Mapping[str, int]  # reason -> count
    restores: int
    transitions: Mapping[tuple[str, int, str, str], int]  # (iface, vhid, from, to)
    probe_failures: Mapping[tuple[str, str], int]  # (check, target) -> count
    command_errors: Mapping[str, int]  # command -> count
    read_errors: int
    polls: int
    probe_durations: Mapping[str, HistogramSnapshot]
    poll_durations: HistogramSnapshot
    state_write_errors: int = 0  # writes of the state file that failed


@dataclass
class Telemetry:
    demotions: Counter[str] = field(default_factory=Counter)
    restores: int = 0
    transitions: Counter[tuple[str, int, str, str]] = field(default_factory=Counter)
    probe_failures: Counter[tuple[str, str]] = field(default_factory=Counter)
    command_errors: Counter[str] = field(default_factory=Counter)
    read_errors: int = 0
    polls: int = 0
    probe_durations: dict[str, Histogram] = field(default_factory=dict)
    poll_durations: Histogram = field(default_factory=Histogram)
    state_write_errors: int = 0

    def probe_duration(self, check: str, seconds: float) -> None:
        histogram = self.probe_durations.get(check)
        if histogram is None:  # not setdefault: no Histogram made and dropped every round
            histogram = self.probe_durations[check] = Histogram()
        histogram.observe(seconds)

    def snapshot(self) -> TelemetrySnapshot:
        return TelemetrySnapshot(
            demotions=MappingProxyType(dict(self.demotions)),
            restores=self.restores,
            transitions=MappingProxyType(dict(self.transitions)),
            probe_failures=MappingProxyType(dict(self.probe_failures)),
            command_errors=MappingProxyType(dict(self.command_errors)),
            read_errors=self.read_errors,
            polls=self.polls,
            probe_durations=MappingProxyType(
                {k: h.snapshot() for k, h in self.probe_durations.items()}
            ),
            poll_durations=self.poll_durations.snapshot(),
            state_write_errors=self.state_write_errors,
        )
