"""One real carpd-py daemon on node A of a simulated pair, set up for measuring.

The world and the simulated executables come from `carpd_py.sim.harness.Harness`; node A's
daemon runs the recording `ifconfig`/`sysctl` of bench/recorder.py (so every command it runs
is timestamped), and is started by the helper of bench/netns.py (in a private network
namespace when the run breaks ICMP or TCP on purpose). Node B runs no daemon: only A's
reaction is measured, and B's daemon would only add noise to A's CPU figures; B's carp vhids
still take part in every election, which the simulated kernel runs.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from carpd_py.sim.harness import Harness, console_script

from .netns import Helped
from .recorder import CallLog, install_recorders
from .routetap import RouteTap

INTERVAL = 1.0  # as in production (the default)
# The defaults of carpd-py.conf(5), written out so that RESULTS.md can show them.
SYNC_DEFAULTS: dict[str, Any] = {"interface": "pfsync0", "timeout": 1.0, "fall": 3, "rise": 3}
UPSTREAM_DEFAULTS: dict[str, Any] = {"min_up": 1, "timeout": 1.0, "fall": 3, "rise": 5}
HOLD_DOWN_DEFAULT = 10.0


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def upstream(name: str, method: str, targets: list[str], port: int | None = None) -> dict[str, Any]:
    group: dict[str, Any] = {"name": name, "method": method, "targets": targets}
    if port is not None:
        group["port"] = port
    group.update(UPSTREAM_DEFAULTS)
    return group


@dataclass
class Scrape:
    polls: float
    poll_seconds: float
    text: str


class BenchNode:
    """Node A's daemon on a fresh simulated world under `root`."""

    def __init__(
        self, root: Path, topology: str, *, private: bool = False, timed: bool = False
    ) -> None:
        """`timed`: the daemon's log lines stamped to the microsecond (`Helped.spawn`) and the
        node's routing messages through a `RouteTap` (when each left the simulator)."""
        self.root = root
        # No ticker thread: the bench measures CPU and the daemon's reads advance the world.
        self.harness = Harness(root, topology=topology, tick=None)
        self.world = self.harness.world
        self.node = self.harness.nodes["A"]
        self.calls_path = root / "A" / "calls.log"
        self.ifconfig, self.sysctl = install_recorders(
            self.world, root / "A" / "rec", "A", self.calls_path
        )
        self.calls = CallLog(self.calls_path)
        self.private = private
        self.helper: Helped | None = None
        self.metrics_port: int | None = None
        self.process: psutil.Process | None = None
        self._log_from = 0  # the log is appended to across runs: this run's part only
        self.timed = timed
        self.tap: RouteTap | None = None
        if timed:
            self.tap = RouteTap(root / "A" / "route-tap.sock", self.node.route_path)
            self.world.set_route_socket("A", str(self.tap.path))

    def configure(
        self,
        *,
        hold_down: float = HOLD_DOWN_DEFAULT,
        method: str = "advskew",
        sync: Mapping[str, Any] | None = None,
        upstreams: list[dict[str, Any]] | None = None,
        metrics: bool = True,
        ifconfig: str | None = None,
        sysctl: str | None = None,
        route_socket: bool = True,
    ) -> dict[str, Any]:
        """Write A's config: production defaults, with what the run needs."""
        self.metrics_port = free_port() if metrics else None
        over: dict[str, Any] = {
            "interval": INTERVAL,
            "demote": {"hold_down": hold_down, "method": method},
            "sync": None if sync is None else {**SYNC_DEFAULTS, **sync},
            "upstream": upstreams or None,
            "metrics": {"listen": f"127.0.0.1:{self.metrics_port}" if metrics else ""},
            "log": {"level": "info"},
            "platform": {
                "ifconfig": ifconfig or self.ifconfig,
                "sysctl": sysctl or self.sysctl,
                "command_timeout": 2.0,
                # The default (the harness's nodes resync every second for the tests); the
                # routing socket is the node's, delivered by the simulated kernel.
                "resync_interval": 10.0,
                # Without it the daemon reads the host every interval (the poll cost runs).
                "route_socket": str(self.node.route_path) if route_socket else "",
            },
        }
        self.harness.configure("A", **over)
        return dict(self.node.config)

    def open_helper(self) -> Helped:
        """Start the helper (in its own network namespace if `private`); no daemon yet."""
        if self.helper is None:
            self.helper = Helped(self.private)
        return self.helper

    def start(self) -> psutil.Process:
        """Start the daemon (and the helper, if not yet): the real console script, -d."""
        helper = self.open_helper()
        self._log_from = len(self.node.log())
        argv = [console_script("carpd-py"), "-d", "-f", str(self.node.config_path)]
        pid = helper.spawn(argv, self.node.log_path, stamp=self.timed)
        self.process = psutil.Process(pid)
        return self.process

    def log(self) -> str:
        """What the daemon logged since the last start."""
        return self.node.log()[self._log_from :]

    def wait_checks_up(self, checks: list[str], timeout: float = 30.0) -> None:
        """Until the daemon has logged a first `check up` for every check."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            missing = [c for c in checks if f"check up check={c}" not in text]
            if not missing:
                return
            if self.process is not None and not self.process.is_running():
                raise RuntimeError(f"carpd-py exited:\n{text[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"checks never up: {missing}\n{text[-2000:]}")
            time.sleep(0.1)

    def scrape(self) -> Scrape:
        assert self.metrics_port is not None, "metrics are off"
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            text = r.read().decode()
        return Scrape(
            polls=_sample(text, "carpd_poll_duration_seconds_count"),
            poll_seconds=_sample(text, "carpd_poll_duration_seconds_sum"),
            text=text,
        )

    def wait_metrics(self, timeout: float = 20.0) -> Scrape:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self.scrape()
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.helper is not None:
            self.helper.close()
            self.helper = None
        if self.tap is not None:
            self.tap.close()
            self.tap = None


def _sample(text: str, name: str) -> float:
    m = re.search(rf"^{re.escape(name)}(?:\{{\}})? (\S+)$", text, re.MULTILINE)
    if m is None:
        raise ValueError(f"no {name} in the metrics")
    return float(m.group(1))


@dataclass(frozen=True)
class CpuMark:
    """A process's own CPU at one moment: each thread's schedstat run time (ns) and
    psutil's user + system (clock ticks, which keep the time of threads that exited)."""

    threads: dict[int, int]
    ticks: float


def cpu_mark(process: psutil.Process) -> CpuMark:
    threads: dict[int, int] = {}
    try:
        for task in Path(f"/proc/{process.pid}/task").iterdir():
            try:
                threads[int(task.name)] = int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue  # that thread has just exited
    except OSError:
        pass
    try:
        times = process.cpu_times()
        ticks = float(times.user + times.system)
    except psutil.Error:
        ticks = float("nan")
    return CpuMark(threads, ticks)


def cpu_between(before: CpuMark, after: CpuMark) -> float:
    """Own CPU seconds between two marks, to the nanosecond: the threads alive at the end,
    from their schedstat (a thread started in between counts whole). A thread that exited in
    between takes its schedstat with it (a sum of the live threads can even go down: trio's
    worker threads retire when idle), so when the clock ticks say more than that by over two
    ticks, the ticks are the figure."""
    if not after.threads:
        return after.ticks - before.ticks
    exact = sum(ns - before.threads.get(tid, 0) for tid, ns in after.threads.items()) / 1e9
    coarse = after.ticks - before.ticks
    return coarse if coarse > exact + 0.02 else exact


def cpu_own(process: psutil.Process) -> float:
    """CPU seconds of the process itself (not its children), to the nanosecond where Linux
    tells it (the sum of its threads' /proc schedstat run time), else psutil's clock ticks."""
    total = 0
    try:
        for task in Path(f"/proc/{process.pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        times = process.cpu_times()
        return float(times.user + times.system)
    return total / 1e9


def peak_rss(process: psutil.Process) -> int | None:
    """The kernel's high-water mark of resident memory (Linux VmHWM), in bytes."""
    try:
        text = Path(f"/proc/{process.pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
    return int(m.group(1)) * 1024 if m else None


@contextlib.contextmanager
def running(node: BenchNode) -> Iterator[BenchNode]:
    node.start()
    try:
        yield node
    finally:
        node.stop()
