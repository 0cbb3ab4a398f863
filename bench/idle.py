"""Cost at idle: CPU seconds per hour, peak resident memory, processes spawned per poll.

Node A's real daemon runs with the production defaults (interval 1.0 s, hold-down 10 s, the
metrics endpoint on) and nothing fails for `seconds`:

- `handbook`: 2 carp interfaces, `[sync]` with a peer, one upstream group of 2 ICMP targets;
- `scale`: 256 carp interfaces, `[sync]` with a peer, 64 upstream targets: 32 ICMP and 32 TCP
  (two groups).

The peer and the targets are loopback addresses (127.0.0.1 stands for the peer on the SYNC
link; 127.0.x.y answer ICMP on Linux; the TCP targets are the helper's listeners), so every
probe is answered, as at idle in production.

CPU is read with psutil before and after the window: the daemon's own user+system time, and
apart from it the time of the children it waited for (`children_user + children_system`):
the simulated `ifconfig`/`sysctl`, Python programs that cost far more than OpenBSD's C ones.
Memory is sampled every second (psutil `rss`) and the kernel's high-water mark is read at the
end (Linux `VmHWM`). The processes are counted from the recorders' log (bench/recorder.py),
poll by poll: a poll is one plain `ifconfig` and what started with it.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .recorder import Call
from .simpair import INTERVAL, BenchNode, cpu_between, cpu_mark, peak_rss, upstream

PEER = "127.0.0.1"


@dataclass(frozen=True)
class PollCounts:
    polls: int  # polls seen in the recorders' log during the window
    mean: float  # processes per poll
    most: int
    least: int
    reads_most: int
    sets_most: int
    by_command: dict[str, int]  # "ifconfig", "ifconfig -g carp", "sysctl net.inet.carp"


@dataclass
class IdleResult:
    name: str
    carp: int
    targets: int
    seconds: float
    cpu_own: float  # CPU seconds of the daemon itself during the window
    cpu_children: float  # CPU seconds of the simulated executables it ran
    rss_peak: int  # bytes, the highest sample
    rss_hwm: int | None  # bytes, the kernel's high-water mark (whole life)
    rss_last: int
    polls_metric: float  # carpd_poll_duration_seconds_count over the window
    poll_seconds_metric: float  # ... and its _sum
    counts: PollCounts
    config: dict[str, Any] = field(default_factory=dict)
    host_reads: int | None = None  # plain `ifconfig` runs in the window (None: older runs)

    @property
    def cpu_own_per_hour(self) -> float:
        return self.cpu_own / self.seconds * 3600

    @property
    def cpu_children_per_hour(self) -> float:
        return self.cpu_children / self.seconds * 3600


def count_per_poll(calls: list[Call], t0: float, t1: float) -> PollCounts:
    """Group the commands of [t0, t1) by poll: each starts at a plain `ifconfig`."""
    window = sorted((c for c in calls if t0 <= c.start < t1), key=lambda c: c.start)
    starts = [c.start for c in window if c.is_full_read]
    if len(starts) < 2:
        return PollCounts(len(starts), float("nan"), 0, 0, 0, 0, {})
    margin = INTERVAL / 4  # the commands of one poll start within milliseconds of each other
    per_poll: list[list[Call]] = []
    for a, b in itertools.pairwise(starts):  # whole polls only
        per_poll.append([c for c in window if a - margin <= c.start < b - margin])
    totals = [len(p) for p in per_poll]
    by_command: dict[str, int] = {}
    for p in per_poll:
        for c in p:
            key = " ".join([c.tool, *c.args]) if c.is_read else "set"
            by_command[key] = by_command.get(key, 0) + 1
    return PollCounts(
        polls=len(per_poll),
        mean=sum(totals) / len(totals),
        most=max(totals),
        least=min(totals),
        reads_most=max(sum(c.is_read for c in p) for p in per_poll),
        sets_most=max(sum(c.is_set for c in p) for p in per_poll),
        by_command=by_command,
    )


def run_idle(
    root: Path,
    name: str,
    carp: int,
    seconds: float,
    *,
    progress: Callable[[str], None] = print,
) -> IdleResult:
    topology = "handbook" if name == "handbook" else f"scale:{carp}"
    node = BenchNode(root, topology)
    helper = node.open_helper()
    if name == "handbook":
        groups = [upstream("isp", "icmp", ["127.0.0.2", "127.0.0.3"])]
        targets = 2
    else:
        icmp = [f"127.0.1.{i}" for i in range(1, 33)]
        tcp = [f"127.0.2.{i}" for i in range(1, 33)]
        port = int(helper.call(op="listen", addresses=tcp, port=0)["port"])
        groups = [upstream("isp-icmp", "icmp", icmp), upstream("isp-tcp", "tcp", tcp, port)]
        targets = 64
    config = node.configure(sync={"peer": PEER}, upstreams=groups, metrics=True)
    checks = ["sync", *(f"upstream:{g['name']}" for g in groups)]
    try:
        proc = node.start()
        node.wait_checks_up(checks, timeout=60)
        node.wait_metrics()
        time.sleep(2 * INTERVAL)  # past start-up: the first reads, the sockets, the first scrape
        progress(f"  idle {name}: {carp} carp, {targets} targets, {seconds:g} s")
        before = node.scrape()
        cpu0, own0 = proc.cpu_times(), cpu_mark(proc)
        t0 = time.time()
        peak = proc.memory_info().rss
        while time.time() - t0 < seconds:
            time.sleep(min(1.0, max(0.0, seconds - (time.time() - t0))))
            peak = max(peak, proc.memory_info().rss)
        cpu1, own1 = proc.cpu_times(), cpu_mark(proc)
        t1 = time.time()
        after = node.scrape()
        last = proc.memory_info().rss
        hwm = peak_rss(proc)
        node.calls.refresh()
        counts = count_per_poll(node.calls.calls, t0, t1)
        reads = sum(1 for c in node.calls.calls if c.is_full_read and t0 <= c.start < t1)
    finally:
        node.stop()
    return IdleResult(
        name=name,
        carp=carp,
        targets=targets,
        seconds=t1 - t0,
        cpu_own=cpu_between(own0, own1),
        cpu_children=(cpu1.children_user + cpu1.children_system)
        - (cpu0.children_user + cpu0.children_system),
        rss_peak=max(peak, last),
        rss_hwm=hwm,
        rss_last=last,
        polls_metric=after.polls - before.polls,
        poll_seconds_metric=after.poll_seconds - before.poll_seconds,
        counts=counts,
        config=config,
        host_reads=reads,
    )


# What the resident memory is made of: the interpreter and each library the daemon imports,
# one after the other, in a fresh process each (ru_maxrss after the imports). The card's
# structlog and prometheus_client come each after what they pull in (asyncio; the HTTP
# servers that prometheus_client's package __init__ imports), so each cost shows apart.
_BASE = "import trio, psutil, logging, json, tomllib"
_HTTP = "http.server, socketserver, wsgiref.simple_server, urllib.request, email, gzip"
LAYERS: tuple[tuple[str, str], ...] = (
    ("python (bare interpreter)", ""),
    ("+ ssl (trio imports it)", "import ssl"),
    ("+ trio", "import trio"),
    ("+ psutil", "import trio, psutil"),
    ("+ logging, json, tomllib", _BASE),
    ("+ asyncio (structlog imports it)", f"{_BASE}, asyncio"),
    ("+ structlog", f"{_BASE}, structlog"),
    (
        "+ http.server, wsgiref, urllib.request, email, gzip (prometheus_client imports them)",
        f"{_BASE}, structlog, {_HTTP}",
    ),
    ("+ prometheus_client", f"{_BASE}, structlog, prometheus_client"),
    ("+ carpd_py.daemon (everything)", "import carpd_py.daemon"),
)


_MEASURE = """
import re
try:
    with open("/proc/self/status") as f:  # VmHWM: this process's own high-water mark
        print(int(re.search(r"VmHWM:\\s+(\\d+) kB", f.read()).group(1)) * 1024)
except OSError:  # no /proc: ru_maxrss (on Linux it would count the parent's, kept over exec)
    import resource
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def memory_layers() -> list[tuple[str, int]]:
    """(layer, peak resident bytes of a process that imported it) for each LAYERS entry."""
    out = []
    for name, imports in LAYERS:
        done = subprocess.run(
            [sys.executable, "-c", imports + "\n" + _MEASURE],
            capture_output=True,
            text=True,
            check=True,
        )
        out.append((name, int(done.stdout.split()[-1])))
    return out
