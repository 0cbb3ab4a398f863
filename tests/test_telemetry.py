"""Counters and histograms of the supervisor: Prometheus's `le` buckets, no churn per round."""

from __future__ import annotations

from carpd_py.telemetry import DURATION_BUCKETS, Histogram, Telemetry


def test_a_value_on_a_bound_counts_in_that_bucket_and_past_the_last_in_inf() -> None:
    h = Histogram()
    for value in (0.0, 0.001, 0.0011, 5.0, 5.1, 100.0):
        h.observe(value)
    snap = h.snapshot()
    assert snap.buckets == DURATION_BUCKETS
    assert snap.counts == (2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2)
    assert (snap.count, snap.total) == (6, 0.0 + 0.001 + 0.0011 + 5.0 + 5.1 + 100.0)


def test_a_probe_duration_keeps_one_histogram_per_check() -> None:
    t = Telemetry()
    t.probe_duration("sync", 0.002)
    first = t.probe_durations["sync"]
    t.probe_duration("sync", 0.003)
    assert t.probe_durations["sync"] is first
    assert first.count == 2
    assert t.snapshot().probe_durations["sync"].counts[1:3] == (1, 1)
