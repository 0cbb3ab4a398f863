"""In-memory stand-ins for the host, the probes and the log, for MockClock tests.

Real processes cannot be used with trio's autojump clock (the clock would jump while a
process runs), so the supervisor's timing is tested against these; the real adapter and the
simulated OpenBSD host are exercised end to end elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import trio

from carpd_py.config import UpstreamConfig
from carpd_py.host import CommandTimeout, MissingInterface
from carpd_py.logsetup import Log
from carpd_py.misread import merge
from carpd_py.model import CarpInfo, CarpNode, HostView, Interface, PfsyncInfo

UP = ("UP", "BROADCAST", "RUNNING", "SIMPLEX", "MULTICAST")


def carp(name: str, dev: str, *nodes: tuple[int, str, int]) -> Interface:
    info = CarpInfo(
        carpdev=dev,
        advbase=1,
        nodes=tuple(CarpNode(v, s, k) for v, s, k in nodes),
        balancing="ip" if len(nodes) > 1 else None,
    )
    status = "master" if any(s == "MASTER" for _, s, _ in nodes) else "backup"
    return Interface(name, 0x8843, UP, 1500, carp=info, groups=("carp",), status=status)


def phys(name: str, status: str = "active") -> Interface:
    return Interface(name, 0x8843, UP, 1500, media="Ethernet autoselect", status=status)


def pfsync(dev: str = "em2", up: bool = True) -> Interface:
    flags = ("UP", "RUNNING") if up else ()
    info = PfsyncInfo(syncdev=dev, maxupd=128, defer=False)
    return Interface(
        "pfsync0", 0x41 if up else 0, flags, 1500, pfsync=info, groups=("carp", "pfsync")
    )


@dataclass
class FakeHost:
    """A node: carp0 vhid 10 on em0, carp1 vhid 20 on em1, pfsync0 over em2."""

    interfaces: dict[str, Interface] = field(default_factory=dict)
    counter: int = 0
    preempt: int = 1
    hang: bool = False  # read() never returns
    fail_reads: bool = False
    fail_sets: bool = False
    commands: list[tuple[Any, ...]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # when each command ran (trio clock)
    reads: int = 0
    last: HostView | None = None
    group_reads: list[tuple[float, bool]] = field(default_factory=list)  # (when, alone)
    sysctl_reads: list[float] = field(default_factory=list)  # when a read asked for sysctl

    @classmethod
    def handbook(cls, skew: int = 0, state: str = "MASTER") -> FakeHost:
        host = cls()
        for iface in (
            phys("em0"),
            phys("em1"),
            phys("em2"),
            carp("carp0", "em0", (10, state, skew)),
            carp("carp1", "em1", (20, state, skew)),
            pfsync(),
        ):
            host.interfaces[iface.name] = iface
        return host

    def link(self, name: str, up: bool) -> None:
        self.interfaces[name] = replace(
            self.interfaces[name], status="active" if up else "no carrier"
        )

    def advskew(self, name: str, vhid: int | None = None) -> int:
        info = self.interfaces[name].carp
        assert info is not None
        return next(n.advskew for n in info.nodes if vhid is None or n.vhid == vhid)

    def set_state(self, name: str, state: str) -> None:
        iface = self.interfaces[name]
        assert iface.carp is not None
        nodes = tuple(replace(n, state=state) for n in iface.carp.nodes)
        self.interfaces[name] = replace(iface, carp=replace(iface.carp, nodes=nodes))

    def hand_set(self, name: str, skews: Mapping[int, int]) -> None:
        iface = self.interfaces[name]
        assert iface.carp is not None
        nodes = tuple(replace(n, advskew=skews.get(n.vhid, n.advskew)) for n in iface.carp.nodes)
        self.interfaces[name] = replace(iface, carp=replace(iface.carp, nodes=nodes))

    async def read(self, *, sysctl: bool = True, groups: bool = True) -> HostView:
        self.reads += 1
        await trio.sleep(0.005)
        if self.hang:
            await trio.sleep_forever()
        if self.fail_reads:
            raise CommandTimeout("ifconfig: no answer within 2s, killed", ("ifconfig",))
        if sysctl:
            self.sysctl_reads.append(trio.current_time())
        if groups or self.last is None:
            self.group_reads.append((trio.current_time(), False))
            demote = {"carp": self.counter}
        else:
            demote = dict(self.last.group_demote)  # the counters of the read before
        self.last = HostView(
            interfaces=tuple(self.interfaces.values()),
            group_demote=demote,
            sysctl={"net.inet.carp.allow": 1, "net.inet.carp.preempt": self.preempt},
        )
        return self.last

    async def read_groups(self) -> dict[str, int]:
        """`ifconfig -g carp` alone."""
        await trio.sleep(0.005)
        if self.fail_reads:
            raise CommandTimeout("ifconfig: no answer within 2s, killed", ("ifconfig",))
        self.group_reads.append((trio.current_time(), True))
        demote = {"carp": self.counter}
        if self.last is not None:
            self.last = replace(self.last, group_demote=demote)
        return demote

    async def reread(self, view: HostView, names: Sequence[str]) -> HostView:
        """`ifconfig NAME` for each: this host never cuts its output short."""
        await trio.sleep(0.005)
        found = {n: self.interfaces.get(n) for n in names}
        self.last = merge(view, found)
        return self.last

    async def set_advskew(self, name: str, skews: Mapping[int, int]) -> None:
        await trio.sleep(0.005)
        if self.last is None or self.last.get(name) is None:
            raise MissingInterface(f"{name}: not in the last read")
        if self.fail_sets:
            raise CommandTimeout("ifconfig: no answer within 2s, killed", ("ifconfig",))
        self.commands.append(("advskew", name, dict(skews)))
        self.times.append(trio.current_time())
        self.hand_set(name, skews)

    async def carpdemote(self, group: str, delta: int) -> None:
        await trio.sleep(0.005)
        if self.fail_sets:
            raise CommandTimeout("ifconfig: no answer within 2s, killed", ("ifconfig",))
        self.commands.append(("carpdemote", group, delta))
        self.times.append(trio.current_time())
        self.counter += delta


@dataclass(frozen=True)
class FakeGroup:
    good: bool
    failed: tuple[str, ...]
    duration: float
    detail: str


@dataclass
class FakeProber:
    peer_up: bool = True
    upstream_up: dict[str, bool] = field(default_factory=dict)
    hang: bool = False

    async def ping(self, address: str, timeout: float) -> float | None:
        if self.hang:
            await trio.sleep_forever()
        if self.peer_up:
            await trio.sleep(0.001)
            return 0.001
        await trio.sleep(timeout)
        return None

    async def group(self, upstream: UpstreamConfig) -> FakeGroup:
        if self.hang:
            await trio.sleep_forever()
        ok = self.upstream_up.get(upstream.name, True)
        await trio.sleep(0.001 if ok else upstream.timeout)
        failed = () if ok else upstream.targets
        return FakeGroup(ok, failed, 0.001 if ok else upstream.timeout, "ok" if ok else "none")

    async def icmp_round(
        self, peer: tuple[str, float] | None, groups: Sequence[UpstreamConfig]
    ) -> FakeIcmpRound:
        """The peer and the groups at once, each as `ping` and `group` above."""
        rtt: list[float | None] = [None]
        took = [0.0]
        results: list[FakeGroup | None] = [None] * len(groups)

        async def ask(address: str, timeout: float) -> None:
            start = trio.current_time()
            rtt[0] = await self.ping(address, timeout)
            took[0] = trio.current_time() - start

        async def one(i: int, upstream: UpstreamConfig) -> None:
            results[i] = await self.group(upstream)

        async with trio.open_nursery() as nursery:
            if peer is not None:
                nursery.start_soon(ask, *peer)
            for i, upstream in enumerate(groups):
                nursery.start_soon(one, i, upstream)
        return FakeIcmpRound(rtt[0], took[0], tuple(r for r in results if r is not None))


@dataclass(frozen=True)
class FakeIcmpRound:
    peer: float | None
    peer_took: float
    groups: tuple[FakeGroup, ...]


class RecordingLog(Log):
    """A Log that keeps (level, event, fields) for assertions."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def bind(self, **kw: Any) -> Log:
        return self

    def debug(self, event: str, **kw: Any) -> None:
        self.lines.append(("debug", event, kw))

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append(("info", event, kw))

    def notice(self, event: str, **kw: Any) -> None:
        self.lines.append(("notice", event, kw))

    def warning(self, event: str, **kw: Any) -> None:
        self.lines.append(("warning", event, kw))

    def error(self, event: str, **kw: Any) -> None:
        self.lines.append(("error", event, kw))

    def events(self, level: str | None = None) -> list[str]:
        return [e for lv, e, _ in self.lines if level is None or lv == level]
