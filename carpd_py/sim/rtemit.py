"""The simulated kernel's routing messages: what a node's routing socket would carry.

After every change of the world (each store transaction, whatever made it: a command, a link
change, the carrier followed from a real interface, an election that took its time), the
interfaces of each node that has a `route_socket` are compared with what they were before:

* an interface whose flags or link state changed: RTM_IFINFO, as `rtm_ifchg()` sends it from
  `if_link_state_change()` and `if_up()`/`if_down()` (sys/net/if.c, sys/net/rtsock.c);
* an interface created or destroyed: RTM_IFANNOUNCE (`rtm_ifannounce()`), IFAN_ARRIVAL or
  IFAN_DEPARTURE.

Link states as the kernel sets them: an Ethernet with carrier LINK_STATE_FULL_DUPLEX (what
`1000baseT full-duplex` reports), without LINK_STATE_DOWN; a carp interface by
`carp_set_state()` (sys/netinet/ip_carp.c): LINK_STATE_UP when a vhost is MASTER, else
LINK_STATE_DOWN when one is BACKUP, else LINK_STATE_INVALID; pfsync, lo and enc
LINK_STATE_UNKNOWN.

The bytes go to the Unix datagram socket at the node's `route_socket`, one message a datagram,
without blocking: a socket nobody listens on, or one whose buffer is full, loses the message,
as the kernel's routing socket does (carpd-py's resync catches up).
"""

from __future__ import annotations

import socket

from ..rtmsg import (
    LINK_STATE_DOWN,
    LINK_STATE_FULL_DUPLEX,
    LINK_STATE_INVALID,
    LINK_STATE_UNKNOWN,
    LINK_STATE_UP,
    encode_ifannounce,
    encode_ifinfo,
)
from .state import BACKUP, CARP, ENC, ETHER, LOOP, MASTER, PFSYNC, WorldState
from .view import iface_flags

# sys/net/if_types.h
IFT_TYPES = {ETHER: 0x06, LOOP: 0x18, ENC: 0xF4, PFSYNC: 0xF6, CARP: 0xF7}

Snapshot = dict[str, dict[str, tuple[int, int, int, int, int]]]  # node -> name -> fields


def _carp_link(states: set[str]) -> int:
    """carp_set_state(): the link follows the vhosts, whichever of them changed."""
    if MASTER in states:
        return LINK_STATE_UP
    return LINK_STATE_DOWN if BACKUP in states else LINK_STATE_INVALID


def snapshot(state: WorldState) -> Snapshot:
    """(index, type, flags, link state, mtu) of every interface of the nodes that listen."""
    out: Snapshot = {}
    for node in state.nodes.values():
        if not node.route_socket:
            continue
        seen = {}
        for iface in node.interfaces:
            if iface.kind == ETHER:
                link = LINK_STATE_FULL_DUPLEX if iface.carrier and iface.up else LINK_STATE_DOWN
            elif iface.kind == CARP and iface.carp is not None:
                link = _carp_link({v.state for v in iface.carp.vhosts})
            else:
                link = LINK_STATE_UNKNOWN
            kind = IFT_TYPES.get(iface.kind, 0)
            seen[iface.name] = (iface.index, kind, iface_flags(node, iface), link, iface.mtu)
        out[node.name] = seen
    return out


def messages(before: dict[str, tuple[int, int, int, int, int]],
             after: dict[str, tuple[int, int, int, int, int]]) -> list[bytes]:  # fmt: skip
    out = []
    for name, (index, *_) in before.items():
        if name not in after:
            out.append(encode_ifannounce(index, name, arrival=False))
    for name, now in after.items():
        old = before.get(name)
        if old is None:
            out.append(encode_ifannounce(now[0], name, arrival=True))
        if old != now:
            index, kind, flags, link, mtu = now
            out.append(encode_ifinfo(index, flags, link, ifi_type=kind, mtu=mtu))
    return out


def deliver(before: Snapshot, after: Snapshot, state: WorldState) -> None:
    for name, now in after.items():
        path = state.nodes[name].route_socket
        if not path:
            continue
        # A node that just started listening announces nothing: carpd-py reads at start.
        msgs = messages(before[name], now) if name in before else []
        if msgs:
            send(path, msgs)


def send(path: str, msgs: list[bytes]) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.setblocking(False)
        for data in msgs:
            try:
                s.sendto(data, path)
            except OSError:  # nobody listening, or the buffer is full: the message is lost
                return
