"""What the simulator costs where OpenBSD's C programs would not (one handbook world)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from .recorder import front_cost, start_latency
from .report import SimCosts
from .simpair import BenchNode
from .stub import write_stub


def _wall(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=False)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure_sim_costs(root: Path, runs: int = 30) -> SimCosts:
    node = BenchNode(root, "handbook")
    sim_ifconfig, sim_sysctl = node.node.ifconfig, node.node.sysctl
    stub_ifconfig, _, _ = write_stub(root / "stub", sim_ifconfig, sim_sysctl)
    return SimCosts(
        start_latency=start_latency(node.ifconfig, [], node.calls_path, runs),
        bare_python=_wall([sys.executable, "-IS", "-c", "pass"], runs),
        sim_read=_wall([sim_ifconfig], runs),
        sim_set=_wall([sim_ifconfig, "carp0", "advskew", "0"], runs),
        stub_read=_wall([stub_ifconfig], runs),
        front=front_cost(root / "front"),
    )
