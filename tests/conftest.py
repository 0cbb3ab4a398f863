"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carpd_py.sim.harness import Harness


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Harness]:
    """The handbook pair on the simulated host; every daemon started is stopped afterwards.
    A module that needs the pair set up otherwise defines its own `pair`."""
    harness = Harness(tmp_path, topology="handbook")
    try:
        yield harness
    finally:
        harness.stop_all()
