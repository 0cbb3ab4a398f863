"""What an RTM_IFINFO says about the last read of the host. Pure.

The daemon never decides on this (only a fresh read settles a demotion: a hand-set advskew
sends no message), but a carp role change can be told at once: carp_set_state()
(sys/netinet/ip_carp.c) sets the carp interface's link state from its vhosts, LINK_STATE_UP
when one is MASTER, else LINK_STATE_DOWN when one is BACKUP, else LINK_STATE_INVALID, and
if_link_state_change() sends RTM_IFINFO (rtm_ifchg(), sys/net/rtsock.c). With one vhid that
is the vhid's role; with several, the message cannot say which one moved, so their roles are
left to the read.

`apply_ifinfo(view, msg)` returns the view with that interface as the message shows it: its
flags (ifm_flags; the extended flags above bit 15 are kept), its status line as ifconfig
prints it from the link state (LINK_STATE_DESCRIPTIONS of sys/net/if.h: a carp interface
"master", "backup" or "invalid"; an Ethernet "active" or "no carrier"), and the role of a
carp interface with exactly one vhid. None when the view has no interface of that index.
"""

from __future__ import annotations

from dataclasses import replace

from .model import IFF_NAMES, CarpInfo, HostView, Interface
from .rtmsg import (
    LINK_STATE_DOWN,
    LINK_STATE_FULL_DUPLEX,
    LINK_STATE_HALF_DUPLEX,
    LINK_STATE_INVALID,
    LINK_STATE_UP,
    IfInfo,
)

_LOW = 0xFFFF
_LOW_NAMES = frozenset(name for _, name in IFF_NAMES)
_UP_STATES = (LINK_STATE_UP, LINK_STATE_HALF_DUPLEX, LINK_STATE_FULL_DUPLEX)

# carp_set_state(): the link state of a carp interface, and what ifconfig calls it.
CARP_STATUS = {LINK_STATE_UP: "master", LINK_STATE_HALF_DUPLEX: "master",
               LINK_STATE_FULL_DUPLEX: "master", LINK_STATE_DOWN: "backup",
               LINK_STATE_INVALID: "invalid"}  # fmt: skip
CARP_ROLE = {"master": "MASTER", "backup": "BACKUP", "invalid": "INIT"}


def _flags(iface: Interface, ifm_flags: int) -> tuple[int, tuple[str, ...]]:
    flags = (iface.flags & ~_LOW) | (ifm_flags & _LOW)
    low = [name for bit, name in IFF_NAMES if ifm_flags & bit]
    high = [name for name in iface.flag_names if name not in _LOW_NAMES]
    return flags, (*low, *high)


def _status(iface: Interface, link_state: int) -> str | None:
    if iface.is_carp:
        return CARP_STATUS.get(link_state, iface.status)
    if iface.media is not None:  # an Ethernet: its media status follows the carrier
        if link_state in _UP_STATES:
            return "active"
        if link_state == LINK_STATE_DOWN:
            return "no carrier"
    return iface.status  # what else a link state prints, the next read tells


def _carp(carp: CarpInfo | None, status: str | None) -> CarpInfo | None:
    if carp is None or carp.multi or status not in CARP_ROLE:
        return carp
    (node,) = carp.nodes
    role = CARP_ROLE[status]
    if node.state == role:
        return carp
    return replace(carp, nodes=(replace(node, state=role),))


def apply_ifinfo(view: HostView, msg: IfInfo) -> HostView | None:
    """The view with the interface of `msg.index` as the message shows it; None when the
    view has no such interface (only a read can tell what it is)."""
    at = next((n for n, i in enumerate(view.interfaces) if i.index == msg.index), None)
    if at is None:
        return None
    iface = view.interfaces[at]
    flags, names = _flags(iface, msg.flags)
    status = _status(iface, msg.link_state)
    carp = _carp(iface.carp, status) if iface.is_carp else iface.carp
    changed = replace(iface, flags=flags, flag_names=names, status=status, carp=carp)
    if changed == iface:
        return view
    interfaces = (*view.interfaces[:at], changed, *view.interfaces[at + 1 :])
    return HostView(interfaces, view.group_demote, view.sysctl)
