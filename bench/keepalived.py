"""keepalived side by side with carpd-py, in the same network lab, measured the same way.

    run_keepalived(root, faults=30)   keepalived (Debian's) in fwA and fwB
    run_carpd_lab(root, faults=30)    carpd-py in fwA and fwB (the simulated host's election)

The equivalent job on each side (`Settings`, the same numbers for both):

- keepalived: a VRRP instance on em0 (vrid 10, VIP 203.0.113.1/29, A priority 200, B 100,
  preempt), `track_interface { em2 }` (the SYNC link), and a `vrrp_script` that pings the two
  upstream targets at once (`ping -c1 -W TIMEOUT`, exit 0 when at least `min_up` answer)
  every `interval` seconds with the same `fall` and `rise`; its transitions go to a FIFO
  (`vrrp_notify_fifo`), read and time-stamped by this process the moment they are written.
- carpd-py: `[sync]` on pfsync0 (no peer: the link, as track_interface) and one ICMP upstream
  group with the same targets, `min_up`, `timeout`, `interval`, `fall`, `rise`; `hold_down`
  0 (keepalived has none). Its demotion is the simulated `ifconfig carp0 advskew 240`, whose
  wall-clock time the simulated host records when it applies it (`World.commands()`).

Faults (`FAULTS`), injected in fwA at a random phase of the polling interval, each cleared and
the pair back to A MASTER before the next:

- `sync_carrier`: `ip link set em2 down` in fwA (a direct cable: B's end loses carrier too).
- `upstream_loss`: every packet em0 of fwA receives is dropped (nftables; the upstream stops
  answering: probes wait out their timeout).
- `upstream_blackhole`: blackhole routes to both targets in fwA (sendto fails at once).

Reaction: from just before the fault command to keepalived's first non-MASTER transition of
A (FAULT or BACKUP), or to carpd-py's first demotion command on A. Restore: from clearing the
fault to A MASTER again (keepalived), or to A's restore command (carpd-py). The carpd-py figures
include the simulated ifconfig's start (a Python process: `sim_command_latency_s`, a few tens of
ms that OpenBSD's ifconfig does not cost).

Idle cost, over `idle` seconds with nothing failing, for node A (the MASTER) and B: CPU of the
daemon's own processes (`cpu_s_per_h`), with what they ran and reaped
(`cpu_with_children_s_per_h`: keepalived's check scripts, sh and ping; carpd-py's simulated
ifconfig and sysctl, Python processes far heavier than OpenBSD's), and the peak of the
summed RSS (`rss_peak_mb`), sampled by psutil every 0.5 s.

Needs root, iproute2, nftables (upstream_loss), and for keepalived the Debian packages
keepalived and iputils-ping: `ensure_tools(install=True)` installs them with apt-get when it
can; by default a missing tool is an error that says what to install.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import psutil

import carpd_py
from bench.reaction import busy, sim_read_spans
from bench.recorder import CallLog, install_recorders
from bench.routetap import RouteTap
from bench.simpair import CpuMark, cpu_between, cpu_mark
from bench.stats import percentile
from carpd_py.rtmsg import LINK_STATE_DOWN
from carpd_py.sim.events import SimCommand
from carpd_py.sim.harness import Harness
from carpd_py.sim.lab import UPSTREAM_TARGETS, Lab
from carpd_py.sim.world import World

Progress = Callable[[str], None]

DEBIAN_PACKAGES = ("keepalived", "iputils-ping", "nftables", "iproute2", "procps")
VIP = "203.0.113.1/29"
PRIORITY = {"A": 200, "B": 100}
NAMESPACE = {"A": "fwA", "B": "fwB"}
NOT_MASTER = ("BACKUP", "FAULT", "STOP")


class BenchUnavailable(RuntimeError):
    """The lab benchmark cannot run here; the message says what is missing."""


@dataclass(frozen=True)
class Settings:
    """What both daemons are told; keepalived's vrrp_script takes whole seconds only."""

    interval: float = 1.0  # seconds between checks (vrrp_script interval: an integer)
    fall: int = 3  # bad rounds in a row before a check is down
    rise: int = 5  # good rounds in a row before it is up again
    timeout: float = 1.0  # one probe's deadline (ping -W)
    min_up: int = 1  # of the two upstream targets
    sync_rise: int = 1  # track_interface: the link back is healthy at once
    hold_down: float = 0.0  # carpd-py only: keepalived has no hold-down
    advert_int: float = 1.0  # keepalived's VRRP advertisement interval
    settle: float = 60.0  # most seconds to wait for a reaction or a restore

    def describe(self) -> str:
        return " ".join(f"{k}={v:g}" for k, v in asdict(self).items())


@dataclass(frozen=True)
class Fault:
    inject: Callable[[Lab], None]
    clear: Callable[[Lab], None]
    tool: str | None = None  # needed besides ip


def _blackhole(lab: Lab, on: bool) -> None:
    for target in UPSTREAM_TARGETS:
        (lab.blackhole if on else lab.unblackhole)("fwA", f"{target}/32")


FAULTS: dict[str, Fault] = {
    "sync_carrier": Fault(
        lambda lab: lab.link_down("fwA", "em2"), lambda lab: lab.link_up("fwA", "em2")
    ),
    "upstream_loss": Fault(
        lambda lab: lab.loss("fwA", "em0", 100), lambda lab: lab.loss("fwA", "em0", 0), "nft"
    ),
    "upstream_blackhole": Fault(
        lambda lab: _blackhole(lab, True), lambda lab: _blackhole(lab, False)
    ),
}
DEFAULT_KINDS = ("sync_carrier", "upstream_loss")


# --- tools ----------------------------------------------------------------------------------


def missing_tools(kinds: Sequence[str] = DEFAULT_KINDS, *, keepalived: bool = True) -> list[str]:
    """What is missing to run the lab benchmark, as install hints; empty when all is there."""
    out = []
    why = Lab.why_unavailable()
    if why is not None:
        out.append(why)
    tools = {FAULTS[k].tool for k in kinds} - {None}
    if keepalived:
        tools |= {"keepalived", "ping"}
    for tool in sorted(t for t in tools if t is not None):
        if shutil.which(tool) is None:
            package = {"nft": "nftables", "ping": "iputils-ping"}.get(tool, tool)
            out.append(f"{tool} is not installed (Debian: {package})")
    return out


def ensure_tools(
    kinds: Sequence[str] = DEFAULT_KINDS, *, keepalived: bool = True, install: bool = False
) -> None:
    """Raise BenchUnavailable naming what is missing; with `install`, apt-get it first."""
    missing = missing_tools(kinds, keepalived=keepalived)
    if missing and install and os.geteuid() == 0 and shutil.which("apt-get") is not None:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *DEBIAN_PACKAGES],
            check=False,
            env=env,
        )
        missing = missing_tools(kinds, keepalived=keepalived)
    if missing:
        raise BenchUnavailable(
            "; ".join(missing)
            + f" (as root: apt-get install -y --no-install-recommends {' '.join(DEBIAN_PACKAGES)})"
        )


def keepalived_version() -> str:
    done = subprocess.run(["keepalived", "--version"], capture_output=True, text=True, check=False)
    line = (done.stderr or done.stdout).strip().splitlines()
    return line[0] if line else "keepalived"


# --- figures --------------------------------------------------------------------------------


def summarize(values: Sequence[float], missed: int = 0) -> dict[str, float]:
    """p50, p95, max (seconds), n, and how many faults got no answer within `settle`."""
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "max": max(values) if values else math.nan,
        "n": float(len(values)),
        "missed": float(missed),
    }


@dataclass
class _Usage:
    cpu_own: float  # seconds, user + system
    cpu_children: float  # seconds, of the children they reaped
    rss_peak: int  # bytes, of all of them at once
    processes: int


def _cpu(procs: Sequence[psutil.Process]) -> tuple[list[CpuMark], float]:
    """(each process's own CPU mark, their children's CPU seconds). Own from the threads'
    schedstat (nanoseconds, as the idle part reads it, `cpu_between`): psutil's user +
    system are clock ticks (10 ms), and at idle a daemon uses a few ticks a minute, so the
    ratio would be mostly rounding."""
    marks = []
    children = 0.0
    for proc in procs:
        marks.append(cpu_mark(proc))
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        children += t.children_user + t.children_system
    return marks, children


def measure_idle(pids: dict[str, list[int]], seconds: float) -> dict[str, _Usage]:
    """CPU and peak summed RSS of each node's processes (and their descendants, for RSS
    only while they live) over `seconds`."""
    procs = {node: [psutil.Process(p) for p in ps] for node, ps in pids.items()}
    before = {node: _cpu(ps) for node, ps in procs.items()}
    peak = dict.fromkeys(procs, 0)
    end = time.monotonic() + seconds
    while True:
        for node, ps in procs.items():
            total = 0
            for proc in ps:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            peak[node] = max(peak[node], total)
        if time.monotonic() >= end:
            break
        time.sleep(min(0.5, max(0.0, end - time.monotonic())))
    out = {}
    for node, ps in procs.items():
        marks, children = _cpu(ps)
        own = sum(cpu_between(a, b) for a, b in zip(before[node][0], marks, strict=True))
        out[node] = _Usage(own, children - before[node][1], peak[node], len(ps))
    return out


def _idle_figures(usage: dict[str, _Usage], seconds: float) -> dict[str, Any]:
    per_hour = 3600.0 / seconds

    def one(u: _Usage) -> dict[str, float]:
        return {
            "cpu_s_per_h": u.cpu_own * per_hour,
            "cpu_with_children_s_per_h": (u.cpu_own + u.cpu_children) * per_hour,
            "rss_peak_mb": u.rss_peak / 1e6,
            "processes": float(u.processes),
        }

    a = one(usage["A"])
    return {
        **{k: a[k] for k in ("cpu_s_per_h", "cpu_with_children_s_per_h", "rss_peak_mb")},
        "idle": {"window_s": seconds, "A": a, "B": one(usage["B"])},
    }


# --- the fault loop, the same for both --------------------------------------------------------


@dataclass(frozen=True)
class _Daemon:
    """What the fault loop needs of a pair of daemons in the lab."""

    name: str
    ready: Callable[[], bool]  # A MASTER, every check up, nothing demoted
    reacted: Callable[[float], float | None]  # the time A stepped down after t, or None yet
    restored: Callable[[float], float | None]  # the time A was back after t, or None yet
    # (kind, fault time, reaction time) -> more figures of that sample (carpd-py's parts)
    detail: Callable[[str, float, float], dict[str, float]] | None = None


def _wait(probe: Callable[[], float | None], timeout: float, step: float = 0.005) -> float | None:
    """Poll until `probe()` gives a time; None past `timeout`. The times are those the
    probe reports (when the event happened), so the step only delays the loop, not them."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = probe()
        if value is not None:
            return value
        time.sleep(step)
    return None


def _wait_ready(daemon: _Daemon, timeout: float, what: str) -> None:
    if _wait(lambda: 1.0 if daemon.ready() else None, timeout, step=0.1) is None:
        raise RuntimeError(f"{daemon.name}: not ready within {timeout:g}s {what}")


def _faults(
    lab: Lab,
    daemon: _Daemon,
    kinds: Sequence[str],
    count: int,
    settings: Settings,
    progress: Progress,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    reaction: dict[str, Any] = {}
    restore: dict[str, Any] = {}
    samples: list[dict[str, Any]] = []
    for kind in kinds:
        fault = FAULTS[kind]
        reacts: list[float] = []
        restores: list[float] = []
        missed = 0
        for i in range(count):
            _wait_ready(daemon, settings.settle, f"before {kind} #{i + 1}")
            time.sleep(random.uniform(0, settings.interval))  # any phase of the polling
            t0 = time.time()
            fault.inject(lab)
            t1 = _wait(partial(daemon.reacted, t0), settings.settle)
            t2 = time.time()
            fault.clear(lab)
            t3 = _wait(partial(daemon.restored, t2), settings.settle)
            sample: dict[str, Any] = {
                "kind": kind,
                "reaction": None if t1 is None else t1 - t0,
                "restore": None if t3 is None else t3 - t2,
            }
            if daemon.detail is not None and t1 is not None:
                sample.update(daemon.detail(kind, t0, t1))
            samples.append(sample)
            if t1 is None:
                missed += 1
            else:
                reacts.append(t1 - t0)
            if t3 is not None:
                restores.append(t3 - t2)
            react_text = "-" if t1 is None else f"{(t1 - t0) * 1000:.0f} ms"
            restore_text = "-" if t3 is None else f"{(t3 - t2) * 1000:.0f} ms"
            progress(
                f"    {daemon.name} {kind} {i + 1}/{count}: reaction {react_text}, "
                f"restore {restore_text}"
            )
        reaction[kind] = summarize(reacts, missed)
        restore[kind] = summarize(restores, count - len(restores))
    return {"reaction": reaction, "restore": restore}, samples


@contextmanager
def _lab(lab: Lab | None) -> Iterator[Lab]:
    if lab is not None:
        yield lab
        return
    with Lab() as own:
        yield own


# --- keepalived -------------------------------------------------------------------------------


class _Fifo:
    """keepalived's notify FIFO for each node, read by a thread; every line time-stamped."""

    def __init__(self, paths: dict[str, Path]) -> None:
        self.lines: list[tuple[float, str, str]] = []  # (time, node, state)
        self._fds: dict[int, str] = {}
        for node, path in paths.items():
            if not path.exists():
                os.mkfifo(path, 0o600)
            # O_RDWR: never blocks on open, never sees EOF when keepalived closes its end
            self._fds[os.open(path, os.O_RDWR | os.O_NONBLOCK)] = node
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._partial: dict[int, bytes] = dict.fromkeys(self._fds, b"")
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select(list(self._fds), [], [], 0.1)
            now = time.time()
            for fd in ready:
                try:
                    data = self._partial[fd] + os.read(fd, 65536)
                except BlockingIOError:
                    continue
                *whole, self._partial[fd] = data.split(b"\n")
                for line in whole:
                    # INSTANCE "wan" MASTER 200
                    words = line.decode(errors="replace").split()
                    if len(words) >= 3 and words[0] == "INSTANCE":
                        with self._lock:
                            self.lines.append((now, self._fds[fd], words[2]))

    def state(self, node: str) -> str | None:
        with self._lock:
            states = [s for _, n, s in self.lines if n == node]
        return states[-1] if states else None

    def first(self, node: str, states: Sequence[str], after: float) -> float | None:
        with self._lock:
            for t, n, s in self.lines:
                if n == node and s in states and t >= after:
                    return t
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for fd in self._fds:
            os.close(fd)


def _check_script(settings: Settings) -> str:
    wait = f"{settings.timeout:g}"
    lines = [
        "#!/bin/sh",
        "# carpd-py benchmark: the upstream group, as carpd-py checks it (all targets at once)",
        "n=0",
    ]
    for i, target in enumerate(UPSTREAM_TARGETS):
        lines.append(f"ping -n -q -c1 -W{wait} {target} >/dev/null 2>&1 & p{i}=$!")
    for i in range(len(UPSTREAM_TARGETS)):
        lines.append(f'wait "$p{i}" && n=$((n + 1))')
    lines.append(f'[ "$n" -ge {settings.min_up} ]')
    return "\n".join(lines) + "\n"


def keepalived_conf(node: str, directory: Path, settings: Settings) -> str:
    """keepalived.conf for node A or B of the lab (the job carpd-py does, as keepalived)."""
    if settings.interval != int(settings.interval) or settings.interval < 1:
        raise ValueError(
            f"keepalived's vrrp_script interval is whole seconds, not {settings.interval}"
        )
    return f"""\
global_defs {{
    router_id fw{node}
    script_user root
    enable_script_security
    vrrp_notify_fifo {directory / "notify.fifo"}
}}

vrrp_script upstream {{
    script "{directory / "check_upstream.sh"}"
    interval {int(settings.interval)}
    timeout {math.ceil(settings.timeout) + 1}
    fall {settings.fall}
    rise {settings.rise}
}}

vrrp_instance wan {{
    state BACKUP
    interface em0
    virtual_router_id 10
    priority {PRIORITY[node]}
    advert_int {settings.advert_int:g}
    track_interface {{
        em2
    }}
    track_script {{
        upstream
    }}
    virtual_ipaddress {{
        {VIP} dev em0
    }}
}}
"""


def run_keepalived(
    root: str | os.PathLike[str],
    faults: int = 30,
    settings: Settings | None = None,
    *,
    idle: float = 60.0,
    kinds: Sequence[str] = DEFAULT_KINDS,
    lab: Lab | None = None,
    install: bool = False,
    progress: Progress = print,
) -> dict[str, Any]:
    """keepalived in fwA and fwB: reaction and restore per fault kind, idle CPU and RSS."""
    settings = settings or Settings()
    ensure_tools(kinds, install=install)
    root = Path(root)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    fifo: _Fifo | None = None
    with _lab(lab) as the_lab:
        try:
            paths = {}
            for node in ("A", "B"):
                directory = root / f"keepalived-{node}"
                directory.mkdir(parents=True, exist_ok=True)
                script = directory / "check_upstream.sh"
                script.write_text(_check_script(settings))
                script.chmod(0o755)
                (directory / "keepalived.conf").write_text(
                    keepalived_conf(node, directory, settings)
                )
                paths[node] = directory / "notify.fifo"
            fifo = _Fifo(paths)
            for node in ("A", "B"):
                directory = root / f"keepalived-{node}"
                log = open(directory / "keepalived.log", "ab")  # noqa: SIM115 (the child's)
                argv = [
                    "keepalived",
                    "--dont-fork",
                    "--log-console",
                    "--log-detail",
                    "--no-syslog",
                    "--vrrp",
                    "-f",
                    str(directory / "keepalived.conf"),
                    "-p",
                    str(directory / "keepalived.pid"),
                    "-r",
                    str(directory / "vrrp.pid"),
                ]
                procs[node] = the_lab.popen_in(NAMESPACE[node], argv, stdout=log, stderr=log)
                log.close()
            notes = fifo  # for the closures below

            def ready() -> bool:
                return notes.state("A") == "MASTER" and notes.state("B") == "BACKUP"

            daemon = _Daemon(
                "keepalived",
                ready,
                lambda t: notes.first("A", NOT_MASTER, t),
                lambda t: notes.first("A", ("MASTER",), t),
            )
            progress(f"  keepalived: {keepalived_version()}, {len(kinds)} kinds x {faults} faults")
            _wait_ready(daemon, settings.settle, "at start")
            figures, samples = _faults(the_lab, daemon, kinds, faults, settings, progress)
            _wait_ready(daemon, settings.settle, "before the idle window")
            progress(f"  keepalived: idle for {idle:g}s")
            pids = {}
            for node, proc in procs.items():
                parent = psutil.Process(proc.pid)  # ip netns exec execs keepalived: this pid
                pids[node] = [
                    proc.pid,
                    *(c.pid for c in parent.children(recursive=True) if c.name() == "keepalived"),
                ]
            usage = measure_idle(pids, idle)
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.terminate()
            for proc in procs.values():
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if fifo is not None:
                fifo.close()
    return {
        "daemon": keepalived_version(),
        "settings": settings.describe(),
        **figures,
        **_idle_figures(usage, idle),
        "samples": samples,
        "notes": [
            "reaction: fault to keepalived's FIFO line leaving MASTER (FAULT or BACKUP) on A",
            "restore: fault cleared to A MASTER again (FIFO)",
            "cpu_with_children: plus the check scripts (sh, ping) keepalived ran and reaped",
        ],
    }


# --- carpd-py -------------------------------------------------------------------------------


def sim_command_latency(samples: int = 10) -> float:
    """Median seconds from starting the simulated `ifconfig carp0 advskew N` to the moment
    the simulated host applied it: what a carpd-py figure in the lab includes on top of what
    OpenBSD's ifconfig would take."""
    with tempfile.TemporaryDirectory(prefix="carpd-simlat-") as tmp:
        world = World.create(Path(tmp) / "world.json", "single")
        ifconfig, _ = world.install_bin(Path(tmp) / "bin", "A")
        took = []
        for i in range(samples):
            start = time.time()
            subprocess.run([ifconfig, "carp0", "advskew", str(i % 2)], check=True)
            took.append(world.commands()[-1].time - start)
        return statistics.median(took)


class _Applied:
    """The simulator's command log (`STATE.commands`), read incrementally: the fault loop asks
    every 5 ms, and parsing the whole log each time (as `World.commands()` does) would take
    CPU from the daemons being measured, more as the run goes on."""

    def __init__(self, world: World) -> None:
        self.path = Path(f"{world.path}.commands")
        self.offset = 0
        self.seen: list[SimCommand] = []

    def refresh(self) -> list[SimCommand]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.seen
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            with contextlib.suppress(ValueError):
                self.seen.append(SimCommand.from_json(json.loads(line)))
        return self.seen


class _LabTiming:
    """Where carpd-py's reaction goes in the lab: both daemons run the recording
    `ifconfig`/`sysctl` (bench/recorder.py: the exec of each command, to the microsecond),
    and node A's routing messages pass a tap (bench/routetap.py: when each left the
    simulator). For a SYNC carrier loss, from `ip link set em2 down`:

    - watcher: to the simulated kernel's link event (`ip monitor link` in fwA prints, the
      node's watcher, carpd_py/sim/carrier.py, reads it and starts its transaction);
    - transaction: to the routing message leaving the simulator (the world's lock, its JSON,
      the kernel, the fsync'd writes);
    - daemon: to A's daemon exec'ing its first `advskew 240`, of which `sim_commands` is the
      time its simulated commands (Python) ran; `net` is the rest, carpd-py's share;
    - applied_after_exec: the set command's own run (Python, the lock) until the simulator
      applied it, which is where the lab's `reaction` ends.
    """

    def __init__(self, harness: Harness, root: Path) -> None:
        self.world = harness.world
        self.calls: dict[str, CallLog] = {}
        self.paths: dict[str, tuple[str, str]] = {}
        for node in harness.nodes:
            log = harness.nodes[node].root / "calls.log"
            rec = harness.nodes[node].root / "rec"
            self.paths[node] = install_recorders(self.world, rec, node, log)
            self.calls[node] = CallLog(log)
        self.tap = RouteTap(root / "route-tap-A.sock", harness.nodes["A"].route_path)
        self.world.set_route_socket("A", str(self.tap.path))
        self.offset = self.world.events_from(0)[1]

    def platform(self, node: str) -> dict[str, Any]:
        ifconfig, sysctl = self.paths[node]
        return {"ifconfig": ifconfig, "sysctl": sysctl}

    def detail(self, kind: str, t0: float, t1: float) -> dict[str, float]:
        a = self.calls["A"]
        a.refresh()
        sets = [c for c in a.calls if c.advskew() == 240 and c.launched() >= t0]
        if not sets:
            return {}
        cmd = min(c.launched() for c in sets)
        out = {"exec": cmd - t0, "applied_after_exec": t1 - cmd}
        if kind != "sync_carrier":
            return out
        events, self.offset = self.world.events_from(self.offset)
        state = self.world.read()
        em2 = state.node("A").get("em2")
        link = [
            state.wall_time(e.time) for e in events
            if e.kind == "link" and e.node == "A" and e.iface == "em2"
            and e.link_state == LINK_STATE_DOWN and state.wall_time(e.time) >= t0 - 0.001
        ]  # fmt: skip
        sent = [
            m.time for m in self.tap.since(t0)
            if em2 is not None and m.index == em2.index and m.link_state == LINK_STATE_DOWN
        ]  # fmt: skip
        if not link or not sent:
            return out
        reads = busy(sim_read_spans(a.calls), min(sent), cmd)
        out.update(
            watcher=min(link) - t0,
            transaction=min(sent) - min(link),
            daemon=cmd - min(sent),
            sim_commands=reads,
            net=cmd - min(sent) - reads,
        )
        return out

    def close(self) -> None:
        self.tap.close()


PARTS = ("watcher", "transaction", "daemon", "sim_commands", "net", "applied_after_exec")


def _lab_parts(samples: list[dict[str, Any]], kinds: Sequence[str]) -> dict[str, Any]:
    """reaction_exec (fault -> A's first `advskew 240` exec'd), and for sync_carrier the
    parts (`_LabTiming`), each p50/p95/max."""
    out: dict[str, Any] = {"reaction_exec": {}, "sync_carrier_parts": {}}
    for kind in kinds:
        mine = [s for s in samples if s["kind"] == kind]
        execs = [float(s["exec"]) for s in mine if "exec" in s]
        if execs:
            out["reaction_exec"][kind] = summarize(execs)
        if kind == "sync_carrier":
            for part in PARTS:
                values = [float(s[part]) for s in mine if part in s]
                if values:
                    s = summarize(values)
                    out["sync_carrier_parts"][part] = {k: s[k] for k in ("p50", "p95", "max")}
    return out


def _carpd_config(settings: Settings) -> dict[str, Any]:
    return {
        "interval": settings.interval,
        "demote": {"hold_down": settings.hold_down},
        "sync": {"interface": "pfsync0", "fall": settings.fall, "rise": settings.sync_rise},
        # The default of carpd-py.conf(5): the harness's nodes resync every second (tests).
        "platform": {"resync_interval": 10.0},
        "upstream": [
            {
                "name": "isp",
                "method": "icmp",
                "targets": list(UPSTREAM_TARGETS),
                "min_up": settings.min_up,
                "timeout": settings.timeout,
                "fall": settings.fall,
                "rise": settings.rise,
            }
        ],
    }


def run_carpd_lab(
    root: str | os.PathLike[str],
    faults: int = 30,
    settings: Settings | None = None,
    *,
    idle: float = 60.0,
    kinds: Sequence[str] = DEFAULT_KINDS,
    lab: Lab | None = None,
    progress: Progress = print,
) -> dict[str, Any]:
    """carpd-py in fwA and fwB, the same faults measured the same way (see the module doc)."""
    settings = settings or Settings()
    ensure_tools(kinds, keepalived=False)
    root = Path(root)
    with _lab(lab) as the_lab:
        harness: Harness = the_lab.harness(root / "carpd")
        timing = _LabTiming(harness, root / "carpd")
        try:
            for node in harness.nodes:
                harness.configure(node, **_carpd_config(settings))
                harness.configure(node, platform=timing.platform(node))
                harness.start(node)
            baseline = {"A": 0, "B": 100}
            world = harness.world

            def ready() -> bool:
                skews = {n: set(harness.advskews(n).values()) for n in harness.nodes}
                roles = set(harness.roles("A").values())
                checks_up = all(
                    f"check up check={c}" in harness.nodes[n].log()
                    for n in harness.nodes
                    for c in ("sync", "upstream:isp")
                )
                return (
                    checks_up
                    and roles == {"MASTER"}
                    and all(skews[n] == {baseline[n]} for n in harness.nodes)
                )

            applied = _Applied(world)

            def command(value: int, after: float) -> float | None:
                for c in applied.refresh():
                    if (
                        c.node == "A"
                        and c.time >= after
                        and c.code == 0
                        and c.argv[-2:] == ("advskew", str(value))
                    ):
                        return c.time
                return None

            daemon = _Daemon(
                "carpd-py",
                ready,
                lambda t: command(240, t),
                lambda t: command(0, t),
                timing.detail,
            )
            progress(f"  carpd-py {carpd_py.__version__}: {len(kinds)} kinds x {faults} faults")
            _wait_ready(daemon, settings.settle, "at start")
            figures, samples = _faults(the_lab, daemon, kinds, faults, settings, progress)
            _wait_ready(daemon, settings.settle, "before the idle window")
            progress(f"  carpd-py: idle for {idle:g}s")
            pids = {}
            for node, n in harness.nodes.items():
                assert n.process is not None
                pids[node] = [n.process.pid]  # ip netns exec execs the daemon: this pid
            usage = measure_idle(pids, idle)
        finally:
            harness.stop_all()
            timing.close()
    return {
        "daemon": f"carpd-py {carpd_py.__version__}",
        "settings": settings.describe(),
        **figures,
        **_lab_parts(samples, kinds),
        **_idle_figures(usage, idle),
        "sim_command_latency_s": sim_command_latency(),
        "samples": samples,
        "notes": [
            "reaction: fault to the simulated host applying A's first `advskew 240`",
            "restore: fault cleared to A's `advskew 0` (hold_down 0)",
            "cpu_with_children: plus the simulated ifconfig/sysctl (Python; not OpenBSD's cost)",
            "sim_command_latency_s: the simulated ifconfig's start, included in each reaction",
            "reaction_exec: fault to A's daemon exec'ing its first `advskew 240` (the "
            "recorder's C front, bench/front.c): without the set command's own Python run",
            "sync_carrier_parts: from `ip link set em2 down`: watcher (to the simulated "
            "kernel's link event: ip monitor link and the node's watcher), transaction (to the "
            "routing message leaving the simulator), daemon (to the exec of the set command; "
            "sim_commands of it: the simulated Python commands running; net: the rest, "
            "carpd-py's share), applied_after_exec (the set command's Python run and lock)",
            "platform.resync_interval 10 s, the default (the test harness's is 1 s)",
        ],
    }


# --- by hand --------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.keepalived",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="3 faults per kind, 10 s idle")
    parser.add_argument("--faults", type=int, help="faults per kind (default 30)")
    parser.add_argument("--idle", type=float, help="idle window, seconds (default 60)")
    parser.add_argument(
        "--kinds", default=",".join(DEFAULT_KINDS), help=f"comma-separated, of {', '.join(FAULTS)}"
    )
    parser.add_argument("--only", choices=("keepalived", "carpd"), help="one side only")
    parser.add_argument("--install", action="store_true", help="apt-get what is missing")
    parser.add_argument("--json", type=Path, help="write the raw results here")
    args = parser.parse_args(argv)
    faults = args.faults or (3 if args.quick else 30)
    idle = args.idle if args.idle is not None else (10.0 if args.quick else 60.0)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in FAULTS]
    if unknown:
        parser.error(f"unknown fault kinds: {', '.join(unknown)}")
    try:
        ensure_tools(kinds, keepalived=args.only != "carpd", install=args.install)
    except BenchUnavailable as exc:
        print(f"bench.keepalived: {exc}", file=sys.stderr)
        return 1
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="carpd-lab-bench-") as tmp, Lab() as lab:
        if args.only != "carpd":
            out["keepalived"] = run_keepalived(Path(tmp), faults, idle=idle, kinds=kinds, lab=lab)
        if args.only != "keepalived":
            out["carpd"] = run_carpd_lab(Path(tmp), faults, idle=idle, kinds=kinds, lab=lab)
    for side, result in out.items():
        print(f"\n{result['daemon']}:")
        for kind in kinds:
            for what in ("reaction", "restore"):
                s = result[what][kind]
                print(
                    f"  {kind:<18} {what:<8} p50 {s['p50'] * 1000:7.0f} ms  p95 "
                    f"{s['p95'] * 1000:7.0f} ms  max {s['max'] * 1000:7.0f} ms  "
                    f"n {s['n']:.0f}  missed {s['missed']:.0f}"
                )
        print(
            f"  idle {result['idle']['window_s']:g}s, node A: cpu {result['cpu_s_per_h']:.1f} "
            f"s/h ({result['cpu_with_children_s_per_h']:.1f} s/h with children), "
            f"rss peak {result['rss_peak_mb']:.1f} MB  [{side}]"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
