"""How the poll cost grows with the number of carp interfaces (1, 16, 64, 256).

For each N, on a `scale(N)` world (N carp interfaces on node A, one vhid each):

1. The real daemon, with the simulated executables (recording, bench/recorder.py): the mean
   poll time from its own `carpd_poll_duration_seconds` histogram (sum/count over the window),
   its own CPU per poll, the CPU per poll of the simulated executables it ran, and the
   processes it started per poll.
2. The same daemon with a stand-in for OpenBSD's C `ifconfig`/`sysctl`: `/bin/sh` exec'ing
   `/bin/cat` of what the simulator printed for this world (bench/stub.py), so that the poll
   time is carpd-py's own plus about a millisecond of fork/exec, as on OpenBSD.
3. In this process, with no daemon: one simulated `ifconfig` run (fork, exec, Python start-up,
   read, render: the simulator's cost) and one stand-in run; `OpenBSDHost.read()` against
   each; `parse_ifconfig` of the output; and `decide` for a steady poll and for the poll that
   demotes all N vhids (carpd-py's own decision, no I/O).
4. In this process: `Supervisor.poll_once` on the stand-in with probes that answer at once,
   CPU and wall per poll, then the same polls under cProfile for where the time goes (shares of
   the profiled time: profiling slows Python code more than the waits, so they are shares,
   not times).

The daemon config is the handbook one: `[sync]` with a peer (127.0.0.1), one upstream group of 2
ICMP targets, interval 1.0 s, metrics on; nothing fails, so no set command runs.
"""

from __future__ import annotations

import cProfile
import math
import pstats
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

import trio

from carpd_py import decide as d
from carpd_py.config import PlatformConfig, UpstreamConfig, load_config
from carpd_py.host import OpenBSDHost
from carpd_py.hysteresis import Check
from carpd_py.logsetup import Log
from carpd_py.model import HostView
from carpd_py.parse import parse_group, parse_ifconfig, parse_sysctl
from carpd_py.rounds import check_names, managed_advskews, policy_of
from carpd_py.supervisor import Supervisor

from .idle import PEER, count_per_poll
from .simpair import INTERVAL, BenchNode, cpu_between, cpu_mark, upstream
from .stub import write_stub

SIZES = (1, 16, 64, 256)


@dataclass(frozen=True)
class DaemonPoll:
    polls: float
    poll_mean: float  # seconds, from the histogram
    cpu_own_per_poll: float  # seconds
    cpu_children_per_poll: float  # seconds
    processes_per_poll: float
    processes_most: int


@dataclass(frozen=True)
class ScalePoint:
    carp: int
    output_bytes: int  # what `ifconfig` prints
    sim: DaemonPoll  # the daemon on the simulated executables
    stub: DaemonPoll  # the daemon on the C-speed stand-in
    sim_ifconfig: float  # one simulated `ifconfig` run, seconds (wall, from spawn to exit)
    stub_ifconfig: float  # one stand-in run
    read_sim: float  # OpenBSDHost.read() in this process, simulated executables
    read_stub: float  # OpenBSDHost.read() in this process, the stand-in
    parse: float  # parse_ifconfig of the output
    decide_steady: float  # decide() for a poll where nothing changes
    decide_demote: float  # decide() for the poll that demotes every vhid
    poll_cpu: float  # Supervisor.poll_once in this process (stand-in, answered probes): CPU
    poll_wall: float  # ... and wall time
    shares: dict[str, float]  # where poll_once's time goes (cProfile, share of the total)


def _median_time(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _spawn_time(argv: list[str], repeat: int) -> float:
    return _median_time(lambda: subprocess.run(argv, capture_output=True, check=True), repeat)


def _host_read_time(ifconfig: str, sysctl: str, repeat: int) -> float:
    host = OpenBSDHost(PlatformConfig(ifconfig=ifconfig, sysctl=sysctl))

    async def reads() -> list[float]:
        await host.read(sysctl=True)
        out = []
        for _ in range(repeat):
            t = trio.current_time()
            await host.read(sysctl=False)  # as in most polls: sysctl every 30 s only
            out.append(trio.current_time() - t)
        return out

    return statistics.median(trio.run(reads))


def _decide_times(config_path: Path, text: str, group: str, repeat: int) -> tuple[float, float]:
    config = load_config(str(config_path))
    policy = policy_of(config)
    view = HostView(
        interfaces=parse_ifconfig(text),
        group_demote=dict([parse_group(group)]),
        sysctl=parse_sysctl("net.inet.carp.preempt=1\n"),
    )
    names = check_names(config)
    up = MappingProxyType({n: Check(up=True, good=9, rounds=9) for n in names})
    down = MappingProxyType({**up, "sync": Check(up=False, bad=1, rounds=10)})
    now = time.time()

    def inputs(checks: MappingProxyType[str, Check]) -> d.Inputs:
        return d.Inputs(checks=checks, now=now, advskews=managed_advskews(view, config), counter=0)

    memory, _ = d.decide(policy, d.Memory(), inputs(up))  # the first poll: each vhid read once
    memory, _ = d.decide(policy, memory, inputs(up))  # the second: manage every vhid
    assert len(memory.vhids) == len(managed_advskews(view, config)), "every vhid managed"
    steady = _median_time(lambda: d.decide(policy, memory, inputs(up)), repeat)
    demote = _median_time(lambda: d.decide(policy, memory, inputs(down)), repeat)
    return steady, demote


@dataclass(frozen=True)
class _Answer:
    good: bool = True
    failed: tuple[str, ...] = ()
    duration: float = 0.0001
    detail: str = "2/2 answered (min_up 1)"


class _AnsweringProber:
    """Every probe answers at once: the poll's own cost, without the network."""

    async def ping(self, address: str, timeout: float) -> float | None:
        return 0.0001

    async def group(self, upstream: UpstreamConfig) -> _Answer:
        return _Answer()


class _QuietLog(Log):
    def debug(self, event: str, **kw: Any) -> None:
        pass

    def info(self, event: str, **kw: Any) -> None:
        pass

    def notice(self, event: str, **kw: Any) -> None:
        pass

    def warning(self, event: str, **kw: Any) -> None:
        pass


# Where a poll's time goes: (label, file suffix, function name) -> its cumulative time in
# cProfile over the whole profiled time (the sum of every function's own time). None of these
# calls another of them; the child tasks of a trio nursery are not under their parent's frame.
PARTS = (
    ("spawning the commands, reading their output (run.run)", "carpd_py/run.py", "run"),
    ("parse_ifconfig", "carpd_py/parse.py", "parse_ifconfig"),
    ("decide", "carpd_py/decide.py", "decide"),
    ("roles, transitions, warnings (Supervisor._observe)", "carpd_py/supervisor.py", "_observe"),
    ("publishing the Status", "carpd_py/supervisor.py", "publish"),
    ("waiting for the processes (epoll)", "~", "<method 'poll' of 'select.epoll' objects>"),
)
REST = "the rest (trio's scheduler, hysteresis, state, probes)"


def _supervisor_poll(config_path: Path, repeat: int) -> tuple[float, float, dict[str, float]]:
    """Supervisor.poll_once in this process: CPU and wall per poll, then the profile."""
    config = load_config(str(config_path))
    supervisor = Supervisor(
        config,
        OpenBSDHost(config.platform, (config.demote.group,)),
        _AnsweringProber(),
        _QuietLog(),
    )

    async def polls() -> tuple[float, float, dict[str, float]]:
        for _ in range(3):  # the first polls manage every vhid: not the steady state
            await supervisor.poll_once()
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(repeat):
            await supervisor.poll_once()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(repeat):
            await supervisor.poll_once()
        profile.disable()
        stats: dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
        total = sum(v[2] for v in stats.values())  # every function's own time
        shares = {}
        for label, where, name in PARTS:
            cum = sum(v[3] for k, v in stats.items() if k[0].endswith(where) and k[2] == name)
            shares[label] = cum / total if total else math.nan
        shares[REST] = 1.0 - sum(shares.values())
        return cpu / repeat, wall / repeat, shares

    return trio.run(polls)


def _daemon_poll(node: BenchNode, seconds: float, stub: tuple[str, str] | None) -> DaemonPoll:
    node.configure(
        sync={"peer": PEER},
        upstreams=[upstream("isp", "icmp", ["127.0.0.2", "127.0.0.3"])],
        metrics=True,
        ifconfig=stub[0] if stub else None,
        sysctl=stub[1] if stub else None,
        route_socket=False,  # a read every poll: what a poll costs as it grows
    )
    try:
        proc = node.start()
        node.wait_checks_up(["sync", "upstream:isp"], timeout=60)
        node.wait_metrics()
        time.sleep(INTERVAL)
        before, cpu0, own0, t0 = node.scrape(), proc.cpu_times(), cpu_mark(proc), time.time()
        time.sleep(seconds)
        cpu1, own1, t1 = proc.cpu_times(), cpu_mark(proc), time.time()
        after = node.scrape()
        node.calls.refresh()
        counts = count_per_poll(node.calls.calls, t0, t1)
    finally:
        node.stop()
    polls = after.polls - before.polls
    own = cpu_between(own0, own1)
    children = (cpu1.children_user + cpu1.children_system) - (
        cpu0.children_user + cpu0.children_system
    )
    per = max(polls, 1.0)
    return DaemonPoll(
        polls=polls,
        poll_mean=(after.poll_seconds - before.poll_seconds) / per,
        cpu_own_per_poll=own / per,
        cpu_children_per_poll=children / per,
        processes_per_poll=counts.mean if stub is None else float("nan"),
        processes_most=counts.most if stub is None else 0,
    )


def run_scale(
    root: Path,
    seconds: float,
    *,
    sizes: tuple[int, ...] = SIZES,
    repeat: int = 30,
    progress: Callable[[str], None] = print,
) -> list[ScalePoint]:
    points = []
    for n in sizes:
        progress(f"  poll cost: {n} carp interfaces")
        node = BenchNode(root / f"n{n}", f"scale:{n}")
        sim_ifconfig, sim_sysctl = node.node.ifconfig, node.node.sysctl  # the sim's own
        stub_ifconfig, stub_sysctl, texts = write_stub(
            root / f"n{n}" / "stub", sim_ifconfig, sim_sysctl
        )
        sim = _daemon_poll(node, seconds, None)
        stub = _daemon_poll(node, seconds, (stub_ifconfig, stub_sysctl))
        steady, demote = _decide_times(node.node.config_path, texts.ifconfig, texts.group, repeat)
        poll_cpu, poll_wall, shares = _supervisor_poll(node.node.config_path, repeat)
        points.append(
            ScalePoint(
                carp=n,
                output_bytes=len(texts.ifconfig.encode()),
                sim=sim,
                stub=stub,
                sim_ifconfig=_spawn_time([sim_ifconfig], repeat),
                stub_ifconfig=_spawn_time([stub_ifconfig], repeat),
                read_sim=_host_read_time(sim_ifconfig, sim_sysctl, repeat),
                read_stub=_host_read_time(stub_ifconfig, stub_sysctl, repeat),
                parse=_median_time(partial(parse_ifconfig, texts.ifconfig), repeat),
                decide_steady=steady,
                decide_demote=demote,
                poll_cpu=poll_cpu,
                poll_wall=poll_wall,
                shares=shares,
            )
        )
    return points
