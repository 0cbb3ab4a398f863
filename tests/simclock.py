"""A clock for the simulated world that a test moves by hand (`World(..., clock=...)`)."""

from __future__ import annotations

T0 = 1_700_000_000.0
SETTLE = 10.0  # longer than any master-down time of the handbook pair


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def step(self, seconds: float = SETTLE) -> None:
        self.t += seconds
