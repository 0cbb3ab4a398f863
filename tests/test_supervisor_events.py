"""The supervisor on the routing socket, on trio's MockClock: reads on a message that matters,
resyncs without one, polls every interval where no routing socket can be opened.

The messages are RTM_IFINFO as rtm_ifchg() (sys/net/rtsock.c) writes them, through a real
Unix datagram socket (`platform.route_socket`).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import trio
import trio.testing

from carpd_py.config import Config, DemoteConfig, PlatformConfig, SyncConfig, UpstreamConfig
from carpd_py.interest import interest, why
from carpd_py.model import HostView
from carpd_py.rtmsg import (
    LINK_STATE_DOWN,
    LINK_STATE_FULL_DUPLEX,
    Desync,
    IfAnnounce,
    IfInfo,
    encode_ifinfo,
)
from carpd_py.supervisor import Supervisor

from .fakes import FakeGroup, FakeHost, FakeProber, RecordingLog
from .test_supervisor import demoted, running

SYNC = SyncConfig(interface="pfsync0", fall=3, rise=3)


def config(tmp_path: Path, route: str) -> Config:
    return Config(
        interval=5.0,
        state_file=str(tmp_path / "state.json"),
        demote=DemoteConfig(hold_down=10.0),
        sync=SYNC,
        platform=PlatformConfig(resync_interval=30.0, route_socket=route),
    )


def send(path: str, data: bytes) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(data, path)


async def test_a_message_reads_the_host_at_once_and_a_lost_one_waits_for_the_resync(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    route = str(tmp_path / "route.sock")
    host, prober, log = FakeHost.handbook(), FakeProber(), RecordingLog()
    sup = Supervisor(config(tmp_path, route), host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(16.0)  # sync up after 3 rounds (0, 5, 10)
        assert sup.checks["sync"].up is True
        reads = host.reads
        await trio.sleep_until(29.0)
        assert host.reads == reads  # probes at 20 and 25, but no read: nothing happened

        host.link("em2", up=False)
        send(route, encode_ifinfo(3, 0x8843, LINK_STATE_DOWN))
        await trio.sleep(0.1)
        assert demoted(sup)  # not at the poll of 30
        assert 29.0 <= host.times[0] < 29.1

        host.link("em2", up=True)  # recovery, then a change that no message reports
        await trio.sleep_until(60.0)
        assert not demoted(sup)
        host.link("em2", up=False)
        at = trio.current_time()
        await trio.sleep_until(at + 35.1)
        assert demoted(sup)  # the resync (30 s) read it
        assert host.times[-1] - at <= 30 + 5 + 0.1
    assert "listening to the routing socket" in log.events("info")


async def test_without_a_routing_socket_the_host_is_read_every_interval(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    host, prober, log = FakeHost.handbook(), FakeProber(), RecordingLog()
    sup = Supervisor(replace(config(tmp_path, ""), interval=1.0), host, prober, log,
                     wall=trio.current_time)  # fmt: skip
    async with running(sup):
        await trio.sleep_until(10.5)
        assert host.reads == 11
    assert log.events("notice").count("no routing socket: reading the host every interval") == 1


async def test_which_messages_matter() -> None:
    view = await FakeHost.handbook().read()
    indexed = replace(view, interfaces=tuple(
        replace(i, index=n) for n, i in enumerate(view.interfaces, 1)))  # fmt: skip
    seen = interest(indexed, Config(sync=SYNC))
    by_name = {name: index for index, name in seen.by_index.items()}
    assert seen.names == {"carp0", "carp1", "em0", "em1", "em2", "pfsync0"}
    assert why([IfInfo(by_name["em2"], 0, LINK_STATE_DOWN)], seen) == "em2 changed"
    assert why([IfInfo(99, 0, LINK_STATE_DOWN)], seen) == "interface index 99 not seen before"
    assert why([IfAnnounce(12, "carp5", True)], seen) == "carp5 created"
    assert why([Desync()], seen) == "RTM_DESYNC"
    lo = replace(indexed, interfaces=(*indexed.interfaces, replace(
        indexed.interfaces[0], name="lo0", index=50)))  # fmt: skip
    assert why([IfInfo(50, 0, 4)], interest(lo, Config(sync=SYNC))) is None


@dataclass
class GatedHost(FakeHost):
    """The handbook node with interface indexes (as ifconfig prints them) and a gate: while
    `gate` is set, a read returns only when it opens, with what the host showed when the
    read began (a slow `ifconfig`)."""

    gate: trio.Event | None = None

    @classmethod
    def indexed(cls) -> GatedHost:
        host = cls()
        for n, iface in enumerate(FakeHost.handbook().interfaces.values(), 1):
            host.interfaces[iface.name] = replace(iface, index=n)
        return host

    def index(self, name: str) -> int:
        index = self.interfaces[name].index
        assert index is not None
        return index

    async def read(self, *, sysctl: bool = True, groups: bool = True) -> HostView:
        gate = self.gate
        view = await super().read(sysctl=sysctl, groups=groups)
        if gate is not None:
            await gate.wait()
        return view


class HookLog:
    def __init__(self) -> None:
        self.fired: list[tuple[str, dict[str, str]]] = []

    def fire(self, event: str, env: Mapping[str, str]) -> None:
        self.fired.append((event, dict(env)))


def role_lines(log: RecordingLog) -> list[str]:
    return [e for e in log.events("notice") if " vhid " in e and " -> " in e]


async def test_a_carp_role_change_is_logged_from_the_message_and_not_again_by_the_read(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """carp_set_state() (sys/netinet/ip_carp.c) makes carp0 LINK_STATE_DOWN as it goes
    BACKUP: the role change is logged from the RTM_IFINFO at once, while the read it calls
    for is still running, with the line a read logs; the read confirms it without a second
    line, hook or count. `interval = 5`, `resync_interval = 30`: long before any resync."""
    route = str(tmp_path / "route.sock")
    host, prober, log, hooks = GatedHost.indexed(), FakeProber(), RecordingLog(), HookLog()
    sup = Supervisor(config(tmp_path, route), host, prober, log, wall=trio.current_time,
                     hooks=hooks)  # fmt: skip
    async with running(sup):
        await trio.sleep_until(16.0)
        assert sup.checks["sync"].up is True
        reads = host.reads
        host.gate = trio.Event()  # the read the message calls for takes its time
        host.set_state("carp0", "BACKUP")
        host.interfaces["carp0"] = replace(host.interfaces["carp0"], status="backup")
        send(route, encode_ifinfo(host.index("carp0"), 0x8843, LINK_STATE_DOWN))
        await trio.sleep(0.001)
        assert role_lines(log) == ["carp0 vhid 10 MASTER -> BACKUP"]
        assert host.reads == reads + 1  # the read began ...
        assert sup.view is not None
        carp0 = sup.view.get("carp0")
        assert carp0 is not None
        assert carp0.status == "master"  # ... and has not returned: the line came first
        assert hooks.fired == [("role_change", {"INTERFACE": "carp0", "VHID": "10",
                                                "FROM": "MASTER", "TO": "BACKUP"})]  # fmt: skip
        host.gate.set()
        host.gate = None
        await trio.sleep(0.1)
        assert host.reads == reads + 1  # the read returned, and confirmed
        assert sup.view is not None
        assert sup.view.get("carp0") == host.interfaces["carp0"]
        assert role_lines(log) == ["carp0 vhid 10 MASTER -> BACKUP"]
        assert len(hooks.fired) == 1
        transitions = sup.telemetry.transitions
        assert transitions[("carp0", 10, "MASTER", "BACKUP")] == 1
        assert trio.current_time() < 30.0  # no resync, no poll has read since


async def test_a_read_that_disagrees_with_the_message_logs_what_it_shows(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """The message said BACKUP, but by the time of the read carp0 is MASTER again: the read
    logs the way back. A message for an interface the last read did not show, or for one with
    several vhids, logs nothing itself: the read tells."""
    route = str(tmp_path / "route.sock")
    host, prober, log = GatedHost.indexed(), FakeProber(), RecordingLog()
    sup = Supervisor(config(tmp_path, route), host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(16.0)
        send(route, encode_ifinfo(host.index("carp0"), 0x8843, LINK_STATE_DOWN))
        await trio.sleep(0.1)
        assert role_lines(log) == [
            "carp0 vhid 10 MASTER -> BACKUP",
            "carp0 vhid 10 BACKUP -> MASTER",
        ]

        host.gate = trio.Event()
        send(route, encode_ifinfo(99, 0x8843, LINK_STATE_DOWN))  # not in the last read
        await trio.sleep(0.001)
        assert len(role_lines(log)) == 2
        host.set_state("carp1", "BACKUP")
        host.gate.set()
        host.gate = None
        await trio.sleep(0.1)
        assert role_lines(log)[2:] == ["carp1 vhid 20 MASTER -> BACKUP"]


async def test_a_message_heard_while_an_older_read_runs_is_not_undone_by_it(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A read that began before carp0 went BACKUP prints MASTER; the message heard while it
    ran is newer: the read does not log carp0 back to MASTER (and the next read confirms)."""
    route = str(tmp_path / "route.sock")
    host, prober, log = GatedHost.indexed(), FakeProber(), RecordingLog()
    sup = Supervisor(config(tmp_path, route), host, prober, log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(16.0)
        host.gate = trio.Event()
        send(route, encode_ifinfo(host.index("em2"), 0x8843, LINK_STATE_FULL_DUPLEX))
        await trio.sleep(0.01)  # a read is running, with carp0 MASTER in it
        reads = host.reads
        host.set_state("carp0", "BACKUP")
        host.interfaces["carp0"] = replace(host.interfaces["carp0"], status="backup")
        send(route, encode_ifinfo(host.index("carp0"), 0x8843, LINK_STATE_DOWN))
        await trio.sleep(0.001)
        assert role_lines(log) == ["carp0 vhid 10 MASTER -> BACKUP"]
        host.gate.set()
        host.gate = None
        await trio.sleep(0.1)
        assert host.reads == reads + 1  # the message's own read came after
        assert role_lines(log) == ["carp0 vhid 10 MASTER -> BACKUP"]
        assert sup.telemetry.transitions[("carp0", 10, "BACKUP", "MASTER")] == 0


@dataclass
class SlowGateway(FakeProber):
    """One of two gateways is dead: every round, its probe waits out the whole timeout, and
    the group is still good (min_up 1)."""

    async def group(self, upstream: UpstreamConfig) -> FakeGroup:
        await trio.sleep(upstream.timeout)
        return FakeGroup(True, (upstream.targets[1],), upstream.timeout, "1 of 2 answered")


async def test_a_message_is_acted_on_while_a_slow_probe_round_runs(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """A round's probes can take their whole timeout (a dead gateway of two): a SYNC carrier
    loss heard meanwhile is read and acted on at once, not when the probes are done."""
    route = str(tmp_path / "route.sock")
    host, log = GatedHost.indexed(), RecordingLog()
    upstream = UpstreamConfig(name="gw", targets=("192.0.2.1", "192.0.2.2"), timeout=1.0)
    cfg = replace(config(tmp_path, route), interval=1.0, upstream=(upstream,))
    sup = Supervisor(cfg, host, SlowGateway(), log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(20.5)  # every round probes from n.0 to n+1.0
        assert sup.checks["sync"].up is True
        assert sup.checks["upstream:gw"].up is True
        host.link("em2", up=False)
        send(route, encode_ifinfo(host.index("em2"), 0x8843, LINK_STATE_DOWN))
        await trio.sleep(0.1)
        assert demoted(sup)
        assert 20.5 <= host.times[0] < 20.6


async def test_the_round_a_message_calls_for_reads_the_group_counter_after_the_commands(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """With `demote.method = advskew` the decision needs no demote counter: the read a
    message calls for is `ifconfig` alone, and `ifconfig -g carp` (for the status and the
    metrics) runs after the commands. With `carpdemote` the counter is read before."""
    for method in ("advskew", "carpdemote"):
        route = str(tmp_path / f"{method}.sock")
        host, log = GatedHost.indexed(), RecordingLog()
        cfg = config(tmp_path, route)
        cfg = replace(cfg, state_file=str(tmp_path / f"{method}.json"),
                      demote=replace(cfg.demote, method=method))  # fmt: skip
        sup = Supervisor(cfg, host, FakeProber(), log, wall=trio.current_time)
        async with running(sup):
            await trio.sleep(16.0)  # the second supervisor starts where the first ended
            host.group_reads.clear()
            host.link("em2", up=False)
            host.counter += 1  # pfsync's own: "carp: pfsync0 demoted group carp by 1"
            counter = host.counter
            send(route, encode_ifinfo(host.index("em2"), 0x8843, LINK_STATE_DOWN))
            await trio.sleep(0.1)
            assert demoted(sup)
            first_command = host.times[0]
            if method == "advskew":
                assert [alone for _, alone in host.group_reads] == [True]
                assert host.group_reads[0][0] > first_command
            else:
                assert [alone for _, alone in host.group_reads] == [False]
                assert host.group_reads[0][0] < first_command
            assert sup.view is not None
            assert sup.view.group_demote["carp"] == counter  # as read before our commands
            assert sup.status.view is not None
            assert sup.status.view.group_demote == sup.view.group_demote


async def test_the_read_a_message_calls_for_leaves_sysctl_to_the_next_whole_read(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    """`net.inet.carp` is read every `sysctl_interval` (45 s here) by the reads that come
    anyway (the resync, 100 s here; every round while demoted), never by the read a routing
    message calls for, even when it is due: that read is on the way to a command."""
    route = str(tmp_path / "route.sock")
    host, log = GatedHost.indexed(), RecordingLog()
    cfg = config(tmp_path, route)
    cfg = replace(cfg, platform=replace(cfg.platform, sysctl_interval=45.0, resync_interval=100.0))
    sup = Supervisor(cfg, host, FakeProber(), log, wall=trio.current_time)
    async with running(sup):
        await trio.sleep_until(61.0)  # read at start (and until managed): due again at 45
        assert [round(t) for t in host.sysctl_reads] == [0]
        host.link("em2", up=False)
        send(route, encode_ifinfo(host.index("em2"), 0x8843, LINK_STATE_DOWN))
        await trio.sleep(0.1)
        assert demoted(sup)
        assert [round(t) for t in host.sysctl_reads] == [0]
        await trio.sleep_until(66.0)  # the next round's read (demoted: every round) takes it
        assert [round(t) for t in host.sysctl_reads] == [0, 65]
