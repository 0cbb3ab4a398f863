"""The demotion poll at scale: how many commands it runs, and how long until every vhid is down.

At idle a poll runs 2 commands (3 when `sysctl net.inet.carp` is due) whatever the number of
interfaces; the poll that demotes runs, besides, one `ifconfig carpN advskew 240` per managed
carp interface with the default method `advskew` (one after the other), or one
`ifconfig -g carp carpdemote 50` with `carpdemote`. For N = 1, 16, 64, 256 carp interfaces
(`scale(N)`), the SYNC cable of node A is pulled once and the bench counts the commands of that
poll and times the first and the last demotion command. Each simulated set command is a Python
process that loads the simulated kernel and rewrites the world under its lock (see 'Simulator
overheads': `sim_set`); on OpenBSD each is a C ifconfig and one ioctl.
"""

from __future__ import annotations

import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .recorder import Call
from .simpair import BenchNode

SIZES = (1, 16, 64, 256)


@dataclass(frozen=True)
class DemotionPoint:
    carp: int
    method: str
    sets: int  # demotion commands in that poll
    reads: int  # reads in that poll
    first: float  # fault -> first demotion command started (s)
    last: float  # fault -> last demotion command started (s)
    last_done: float  # fault -> last demotion command finished (s)
    sim_set: float  # one simulated set command on this world, run alone, spawn to exit (s)

    @property
    def spread(self) -> float:
        return self.last_done - self.first


def _is_demotion(call: Call) -> bool:
    return call.is_set and ("240" in call.args or "carpdemote" in call.args)


def measure_demotion(root: Path, carp: int, method: str) -> DemotionPoint:
    node = BenchNode(root, f"scale:{carp}")
    node.configure(sync={}, upstreams=None, metrics=False, method=method)
    expected = carp if method == "advskew" else 1
    try:
        node.start()
        node.wait_checks_up(["sync"], timeout=60)
        time.sleep(1.0)
        node.world.set_link("A", "em2", up=False)
        t_fault = time.time()
        deadline = time.monotonic() + 60 + carp * 0.5
        while True:
            node.calls.refresh()
            sets = [c for c in node.calls.since(t_fault) if _is_demotion(c)]
            if len(sets) >= expected or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        node.stop()
    sim_set = _sim_set_time(node.node.ifconfig)
    if not sets:
        raise TimeoutError(f"{carp} carp, {method}: no demotion command")
    first = min(sets, key=lambda c: c.start)
    last = max(sets, key=lambda c: c.start)
    poll_start = max(c.start for c in node.calls.calls if c.is_full_read and c.start <= first.start)
    reads = [c for c in node.calls.calls if c.is_read and poll_start - 0.2 <= c.start <= last.start]
    return DemotionPoint(
        carp=carp,
        method=method,
        sets=len(sets),
        reads=len(reads),
        first=first.start - t_fault,
        last=last.start - t_fault,
        last_done=max(c.end for c in sets) - t_fault,
        sim_set=sim_set,
    )


def _sim_set_time(ifconfig: str, runs: int = 7) -> float:
    """The simulator's own `ifconfig carp0 advskew S` on this world (its size matters: the
    write path rewrites the whole world), spawn to exit, median."""
    times = []
    for i in range(runs):
        t = time.perf_counter()
        subprocess.run(
            [ifconfig, "carp0", "advskew", str(240 - i % 2)], capture_output=True, check=True
        )
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def run_demotion(
    root: Path,
    *,
    sizes: tuple[int, ...] = SIZES,
    progress: Callable[[str], None] = print,
) -> list[DemotionPoint]:
    out = []
    for n in sizes:
        progress(f"  demotion poll: {n} carp interfaces, advskew")
        out.append(measure_demotion(root / f"advskew-{n}", n, "advskew"))
    n = max(sizes)
    progress(f"  demotion poll: {n} carp interfaces, carpdemote")
    out.append(measure_demotion(root / f"carpdemote-{n}", n, "carpdemote"))
    return out
