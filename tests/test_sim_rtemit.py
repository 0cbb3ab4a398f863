"""The simulated host sends byte-exact routing messages for every link and carp state change.

rtm_ifchg() from if_link_state_change() (sys/net/rtsock.c, sys/net/if.c); carp_set_state()
(sys/netinet/ip_carp.c) sets the carp interface's link state; rtm_ifannounce() on create and
destroy. Decoded here with carpd_py.rtmsg, the daemon's own decoder.
"""

from __future__ import annotations

import socket
from pathlib import Path

from carpd_py.rtmsg import (
    LINK_STATE_DOWN,
    LINK_STATE_FULL_DUPLEX,
    LINK_STATE_INVALID,
    LINK_STATE_UP,
    IfAnnounce,
    IfInfo,
    Message,
    decode,
)
from carpd_py.sim.harness import wait_until
from carpd_py.sim.state import MASTER
from carpd_py.sim.world import World


def _listen(path: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    s.settimeout(5)
    return s


def _drain(s: socket.socket) -> list[Message]:
    out: list[Message] = []
    s.setblocking(False)
    try:
        while True:
            out.extend(decode(s.recv(65536)))
    except BlockingIOError:
        pass
    return out


def test_carrier_loss_and_carp_role_changes_arrive_as_rtm_ifinfo(tmp_path: Path) -> None:
    world = World.create(tmp_path / "w.json")
    with _listen(tmp_path / "a.sock") as a:
        world.set_route_socket("A", str(tmp_path / "a.sock"))
        view = world.view("A")
        index = {i.name: i.index for i in view.interfaces}
        assert _drain(a) == []  # starting to listen announces nothing

        world.set_link("A", "em2", up=False)
        msgs = _drain(a)
        em2 = [m for m in msgs if isinstance(m, IfInfo) and m.index == index["em2"]]
        assert len(em2) == 1
        assert em2[0].link_state == LINK_STATE_DOWN

        world.set_link("A", "em0", up=False)  # carp0's carpdev: carp0 leaves MASTER
        carp0 = [m for m in _drain(a) if isinstance(m, IfInfo) and m.index == index["carp0"]]
        assert carp0
        assert carp0[-1].link_state not in (LINK_STATE_UP, LINK_STATE_FULL_DUPLEX)

        world.set_link("A", "em0", up=True)
        world.set_link("A", "em2", up=True)
        after = [m for m in _drain(a) if isinstance(m, IfInfo)]
        assert any(m.index == index["em2"] and m.link_state == LINK_STATE_FULL_DUPLEX
                   for m in after)  # fmt: skip


def test_carp_link_states_are_those_of_carp_set_state(tmp_path: Path) -> None:
    """carp_set_state() (sys/netinet/ip_carp.c): LINK_STATE_UP when a vhost is MASTER, else
    LINK_STATE_DOWN when one is BACKUP, else LINK_STATE_INVALID (never FULL_DUPLEX: that is
    what an Ethernet's media reports)."""
    world = World.create(tmp_path / "w.json")
    with _listen(tmp_path / "a.sock") as a:
        world.set_route_socket("A", str(tmp_path / "a.sock"))
        index = {i.name: i.index for i in world.view("A").interfaces}
        world.set_link("A", "em0", up=False)  # carp0's carpdev: INIT
        world.set_link("A", "em0", up=True)  # INIT -> BACKUP -> MASTER (preempt)
        wait_until(lambda: world.state("A", "carp0") == MASTER, 10.0, "A MASTER of carp0")
        states = [m.link_state for m in _drain(a)
                  if isinstance(m, IfInfo) and m.index == index["carp0"]]  # fmt: skip
        assert states[0] == LINK_STATE_INVALID
        assert LINK_STATE_DOWN in states
        assert states[-1] == LINK_STATE_UP


def test_create_and_destroy_arrive_as_rtm_ifannounce(tmp_path: Path) -> None:
    world = World.create(tmp_path / "w.json")
    with _listen(tmp_path / "a.sock") as a:
        world.set_route_socket("A", str(tmp_path / "a.sock"))
        world.ifconfig("A", "carp9", "create")
        world.ifconfig("A", "carp9", "destroy")
        announced = [m for m in _drain(a) if isinstance(m, IfAnnounce)]
        assert [(m.name, m.arrival) for m in announced] == [("carp9", True), ("carp9", False)]


def test_nobody_listening_loses_the_message_quietly(tmp_path: Path) -> None:
    world = World.create(tmp_path / "w.json")
    world.set_route_socket("A", str(tmp_path / "nobody.sock"))
    world.set_link("A", "em2", up=False)  # no error: the message is lost
    assert world.view("A").get("em2") is not None
