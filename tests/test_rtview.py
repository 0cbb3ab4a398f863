"""rtview.apply_ifinfo: an RTM_IFINFO applied to the last read, on views parsed from real
`ifconfig` output (tests/data/ifconfig).

carp_set_state() (sys/netinet/ip_carp.c) sets a carp interface's link state: LINK_STATE_UP
when a vhost is MASTER, else LINK_STATE_DOWN when one is BACKUP, else LINK_STATE_INVALID;
carp_carpdev_state() clears IFF_RUNNING when the carpdev loses its link. if_link_state_change()
sends the message (rtm_ifchg(), sys/net/rtsock.c); ifconfig names the states from
LINK_STATE_DESCRIPTIONS (sys/net/if.h).
"""

from __future__ import annotations

import socket
from pathlib import Path

from carpd_py.config import SyncConfig
from carpd_py.model import HostView
from carpd_py.parse import parse_ifconfig
from carpd_py.rounds import roles, sync_link_problem
from carpd_py.rtmsg import (
    LINK_STATE_DOWN,
    LINK_STATE_FULL_DUPLEX,
    LINK_STATE_INVALID,
    LINK_STATE_UNKNOWN,
    LINK_STATE_UP,
    IfInfo,
    decode,
    encode_ifinfo,
)
from carpd_py.rtview import apply_ifinfo
from carpd_py.sim.rtemit import IFT_TYPES
from carpd_py.sim.state import CARP, ETHER
from carpd_py.sim.world import World

DATA = Path(__file__).parent / "data" / "ifconfig"
IFF_RUNNING_UP = 0x8843  # UP,BROADCAST,RUNNING,SIMPLEX,MULTICAST
IFF_NOT_RUNNING = 0x8803  # UP,BROADCAST,SIMPLEX,MULTICAST


def view_of(name: str) -> HostView:
    return HostView(parse_ifconfig((DATA / name).read_text()))


def message(index: int, flags: int, link_state: int, kind: str = CARP) -> IfInfo:
    """The bytes rtm_ifchg() sends, through the daemon's decoder."""
    (msg,) = decode(encode_ifinfo(index, flags, link_state, ifi_type=IFT_TYPES[kind], mtu=1500))
    assert isinstance(msg, IfInfo)
    return msg


def test_master_to_backup_on_a_one_vhid_carp_interface() -> None:
    view = view_of("handbook_a.txt")
    carp0 = view.get("carp0")
    assert carp0 is not None
    assert carp0.index == 7
    after = apply_ifinfo(view, message(7, IFF_RUNNING_UP, LINK_STATE_DOWN))
    assert after is not None
    assert roles(after) == {**roles(view), ("carp0", 10): "BACKUP"}
    new = after.get("carp0")
    assert new is not None
    assert new.status == "backup"
    assert new.flag_names == carp0.flag_names
    assert [i for i in after.interfaces if i.name != "carp0"] == [
        i for i in view.interfaces if i.name != "carp0"
    ]


def test_backup_to_master_is_link_state_up() -> None:
    view = view_of("handbook_b.txt")
    after = apply_ifinfo(view, message(8, IFF_RUNNING_UP, LINK_STATE_UP))
    assert after is not None
    assert roles(after)[("carp1", 20)] == "MASTER"
    assert roles(after)[("carp0", 10)] == "BACKUP"
    carp1 = after.get("carp1")
    assert carp1 is not None
    assert carp1.status == "master"


def test_carpdev_lost_init_invalid_and_not_running() -> None:
    # carp_carpdev_state(): IFF_RUNNING cleared, every vhost INIT: LINK_STATE_INVALID
    view = view_of("handbook_a.txt")
    after = apply_ifinfo(view, message(7, IFF_NOT_RUNNING, LINK_STATE_INVALID))
    assert after is not None
    carp0 = after.get("carp0")
    assert carp0 is not None
    assert roles(after)[("carp0", 10)] == "INIT"
    assert carp0.status == "invalid"
    assert carp0.flags == 0x8803
    assert carp0.flag_names == ("UP", "BROADCAST", "SIMPLEX", "MULTICAST")
    assert not carp0.running
    # and back: the same view as the INIT fixture shows, role and all
    init = view_of("carp_init_invalid.txt")
    back = apply_ifinfo(init, message(11, IFF_RUNNING_UP, LINK_STATE_UP))
    assert back is not None
    assert roles(back) == {("carp4", 30): "MASTER"}


def test_the_syncdev_loses_its_carrier_and_gets_it_back() -> None:
    view = view_of("handbook_a.txt")
    lost = apply_ifinfo(view, message(3, IFF_RUNNING_UP, LINK_STATE_DOWN, ETHER))
    assert lost is not None
    em2 = lost.get("em2")
    assert em2 is not None
    assert em2.status == "no carrier"
    assert roles(lost) == roles(view)
    sync = SyncConfig(interface="pfsync0")
    assert sync_link_problem(view, sync) is None
    assert sync_link_problem(lost, sync) == "syncdev em2 no carrier"
    back = apply_ifinfo(lost, message(3, IFF_RUNNING_UP, LINK_STATE_FULL_DUPLEX, ETHER))
    assert back == view


def test_several_vhids_keep_their_roles_for_the_read() -> None:
    view = view_of("carp_multi_ip.txt")
    carp2 = view.get("carp2")
    assert carp2 is not None
    assert carp2.carp is not None
    assert carp2.carp.multi
    assert carp2.index is not None
    after = apply_ifinfo(view, message(carp2.index, IFF_RUNNING_UP, LINK_STATE_DOWN))
    assert after is not None
    assert roles(after) == roles(view)  # which vhid moved, only a read tells
    new = after.get("carp2")
    assert new is not None
    assert new.status == "backup"


def test_an_unknown_index_is_left_to_the_read_and_no_news_is_the_same_view() -> None:
    view = view_of("handbook_a.txt")
    assert apply_ifinfo(view, message(99, IFF_RUNNING_UP, LINK_STATE_DOWN)) is None
    assert apply_ifinfo(view, message(7, IFF_RUNNING_UP, LINK_STATE_UP)) is view
    # a link state that says nothing (LINK_STATE_UNKNOWN) leaves the role alone
    assert apply_ifinfo(view, message(7, IFF_RUNNING_UP, LINK_STATE_UNKNOWN)) is view


def test_the_simulators_messages_applied_to_the_last_read_match_the_next_read(
    tmp_path: Path,
) -> None:
    """What the simulated kernel sends (rtemit.py, as carp_set_state() and
    if_link_state_change()) applied to the read before tells the roles, the flags and the
    status lines of the read after, interface by interface."""
    world = World.create(tmp_path / "w.json")
    sock = tmp_path / "a.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(str(sock))
        s.setblocking(False)
        world.set_route_socket("A", str(sock))
        for ifname, up in (("em2", False), ("em0", False), ("em0", True), ("em2", True)):
            before = world.view("A")
            world.set_link("A", ifname, up=up)
            after = world.view("A")
            told: HostView | None = before
            try:
                while True:
                    for m in decode(s.recv(65536)):
                        assert isinstance(m, IfInfo)
                        assert told is not None
                        told = apply_ifinfo(told, m)
            except BlockingIOError:
                pass
            assert told is not None
            assert roles(told) == roles(after), ifname
            for iface in after.interfaces:
                seen = told.get(iface.name)
                assert seen is not None
                assert (seen.flags, seen.flag_names, seen.status) == (
                    iface.flags,
                    iface.flag_names,
                    iface.status,
                ), iface.name
