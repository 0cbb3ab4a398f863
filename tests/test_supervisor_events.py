"""The supervisor on the routing socket, on trio's MockClock: reads on a message that matters,
resyncs without one, polls every interval where no routing socket can be opened.

The messages are RTM_IFINFO as rtm_ifchg() (sys/net/rtsock.c) writes them, through a real
Unix datagram socket (`platform.route_socket`).
"""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

import trio
import trio.testing

from carpd_py.config import Config, DemoteConfig, PlatformConfig, SyncConfig
from carpd_py.interest import interest, why
from carpd_py.rtmsg import LINK_STATE_DOWN, Desync, IfAnnounce, IfInfo, encode_ifinfo
from carpd_py.supervisor import Supervisor

from .fakes import FakeHost, FakeProber, RecordingLog
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
