"""Two supervisors deciding together on trio's MockClock: the pair's inputs (the peer's view,
its freshness, a reason that waits for it) count as news for the idle round (issue 12's "a
round where nothing changed decides nothing" must not starve the pair of issue 11).

The channels are the real ones (peer.py: seal, unseal, admit), wired back to back through a
socket stand-in that hands each datagram to the other channel at once, and can be cut.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import trio
import trio.testing

from carpd_py.config import Config, DemoteConfig, PeerConfig, PlatformConfig, SyncConfig
from carpd_py.pairing import Pairing
from carpd_py.peer import Channel
from carpd_py.supervisor import Supervisor

from .fakes import FakeHost, FakeProber, RecordingLog
from .test_supervisor import demoted

KEY = b"a shared secret of the right size"
SHARED = "sync lost on both nodes: failover would not help"


class Wire:
    """Stands in for a channel's UDP socket: delivers to the other channel at once."""

    family = socket.AF_INET

    def __init__(self, to: Channel) -> None:
        self.to = to
        self.cut = False

    def sendto(self, data: bytes, address: object) -> int:
        if not self.cut:
            self.to.receive(data, trio.current_time())
        return len(data)


def config(tmp_path: Path, name: str) -> Config:
    return Config(
        interval=1.0,
        state_file=str(tmp_path / f"state-{name}.json"),
        demote=DemoteConfig(hold_down=10.0),
        sync=SyncConfig(interface="pfsync0", fall=3, rise=3),  # the link only, no ping
        platform=PlatformConfig(route_socket=""),  # none here: a read every round
        peer=PeerConfig(("127.0.0.1:0",), ("127.0.0.1:9",), timeout=3.0),
    )


def node(tmp_path: Path, name: str) -> tuple[Supervisor, FakeHost, RecordingLog]:
    host, log = FakeHost.handbook(), RecordingLog()
    conf = config(tmp_path, name)
    sup = Supervisor(conf, host, FakeProber(), log, wall=trio.current_time)
    assert conf.peer is not None
    sup.pair = Pairing(Channel(conf.peer, KEY, log), log)
    return sup, host, log


def wire(a: Supervisor, b: Supervisor) -> tuple[Wire, Wire]:
    """(a -> b, b -> a)"""
    assert a.pair is not None
    assert b.pair is not None
    to_b, to_a = Wire(b.pair.channel), Wire(a.pair.channel)
    for sup, out in ((a, to_b), (b, to_a)):
        assert sup.pair is not None
        sup.pair.channel.sockets = [out]  # type: ignore[list-item]
        sup.pair.channel.targets = [("127.0.0.1", 9, socket.AF_INET)]
    return to_b, to_a


@asynccontextmanager
async def both(a: Supervisor, b: Supervisor) -> AsyncIterator[None]:
    async with trio.open_nursery() as nursery:
        for sup in (a, b):
            sup.load()
            await nursery.start(sup.run)
        yield
        nursery.cancel_scope.cancel()


async def test_a_shared_fault_is_withheld_on_idle_rounds_and_a_lost_peer_leaves_it_to_me(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    a, host_a, log_a = node(tmp_path, "A")
    b, host_b, log_b = node(tmp_path, "B")
    _, b_to_a = wire(a, b)
    async with both(a, b):
        await trio.sleep_until(10.5)
        for log in (log_a, log_b):
            assert "peer up: deciding together" in log.events("notice")
        # The direct SYNC cable reaches the two reads an interval apart: A reads it down at
        # 11, while B's last view is still good (A waits for B's verdict); B reads it at 12.
        # A's rounds from 12 on are idle for the host (the same read, the same verdicts):
        # only the peer's new view can tell A that the fault is shared.
        host_a.link("em2", up=False)
        await trio.sleep_until(11.5)
        host_b.link("em2", up=False)
        await trio.sleep_until(20.5)
        for log in (log_a, log_b):
            assert log.events("notice").count(SHARED) == 1
        assert host_a.commands == []
        assert host_b.commands == []
        assert not demoted(a)
        assert not demoted(b)
        # idle rounds still send this node's view, one a round (the peer's waits need it)
        assert a.pair is not None
        sent = a.pair.channel.seq
        await trio.sleep_until(23.5)
        assert a.pair.channel.seq - sent == 3

        # B falls silent: after [peer] timeout A decides alone, on a round idle for the host.
        b_to_a.cut = True
        await trio.sleep_until(29.5)
        assert "peer lost: deciding alone" in log_a.events("warning")
        assert demoted(a)
        assert host_a.commands == [("advskew", "carp0", {10: 240}), ("advskew", "carp1", {20: 240})]
        assert 26.0 <= host_a.times[0] < 28.0
        assert not demoted(b)  # B still hears A: the fault stays shared for it
        # B's status shows A's new view although B's own host and verdicts did not change
        assert b.status.pair is not None
        assert b.status.pair.view is not None
        assert b.status.pair.view["demoted"] is True
