"""The text exposition format the daemon renders itself (exposition.py): byte for byte what
prometheus_client.generate_latest renders for the same families, escaping included."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import generate_latest, utils

from carpd_py.exposition import (
    CounterFamily,
    Family,
    GaugeFamily,
    HistogramFamily,
    Registry,
    go_float,
    render,
)

from .promclient import AsClient, Frozen

floatToGoString: Callable[[float], str] = utils.floatToGoString


@pytest.mark.parametrize(
    "value",
    [0, 1, -1, 0.5, 0.005, 1e-9, 2.5e-7, 1234567.0, 12345678.9, 1.5e9, 1e22, -3e10, 240,
     math.inf, -math.inf, math.nan, 1764662400.123],
)  # fmt: skip
def test_numbers_are_written_as_go_writes_them(value: float) -> None:
    assert go_float(value) == floatToGoString(value)


@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-(2**53), 2**53))
def test_any_number_is_written_as_prometheus_client_writes_it(value: float) -> None:
    assert go_float(value) == floatToGoString(value)


def families() -> list[Family]:
    plain = GaugeFamily("carpd_plain", "A value without labels.", 3)
    odd = GaugeFamily(
        "carpd_odd",
        'HELP with a backslash \\ a "quote" and a\nnewline; ünïcödé',
        labels=["zeta", "alpha", "mid"],
    )
    odd.add_metric(["back\\slash", 'a "quoted" word', "two\nlines"], 1)
    odd.add_metric(["ünïcödé", "", "tab\there"], -0.25)
    counter = CounterFamily("carpd_things_total", "Things.", labels=["why"])
    counter.add_metric(["a"], 0)
    counter.add_metric(["b"], 12345678901)
    bare = CounterFamily("carpd_bare", "A counter without labels.", 7)
    hist = HistogramFamily("carpd_took_seconds", "How long.", labels=["check"])
    hist.add_metric(["sync"], [("0.005", 1), ("1.0", 3), ("+Inf", 4)], 2.75)
    empty = GaugeFamily("carpd_empty", "No samples.", labels=["x"])
    return [plain, odd, counter, bare, hist, empty]


def test_families_render_as_prometheus_client_renders_them() -> None:
    registry = Registry([Frozen(families())])
    text = registry.render()
    assert text == generate_latest(AsClient(registry))
    lines = text.decode().splitlines()
    assert "# HELP carpd_things_total Things." in lines
    assert "# TYPE carpd_things_total counter" in lines
    assert 'carpd_things_total{why="b"} 1.2345678901e+10' in lines
    assert (  # label pairs sorted by name, values escaped
        'carpd_odd{alpha="a \\"quoted\\" word",mid="two\\nlines",zeta="back\\\\slash"} 1.0' in lines
    )
    assert 'carpd_took_seconds_bucket{check="sync",le="+Inf"} 4.0' in lines
    assert 'carpd_took_seconds_count{check="sync"} 4.0' in lines


def test_render_is_the_families_in_order() -> None:
    fams = families()
    assert render(fams) == b"".join(render([f]) for f in fams)


def test_a_label_count_mismatch_is_refused() -> None:
    family = GaugeFamily("carpd_x", "x", labels=["a", "b"])
    with pytest.raises(ValueError, match="carpd_x"):
        family.add_metric(["only one"], 1)
    with pytest.raises(ValueError, match="not both"):
        GaugeFamily("carpd_y", "y", value=1, labels=["a"])
