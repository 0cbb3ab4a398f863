"""The simulated kernel state as `ifconfig` reports it: `carpd_py.model` values.

Flags, link states and lines as sbin/ifconfig/ifconfig.c computes and prints them; `render.py`
turns these values into text.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..model import IFF_NAMES, CarpInfo, CarpNode, HostView, Interface, PfsyncInfo
from .state import CARP, CARP_BAL_MODES, ENC, ETHER, LOOP, MASTER, PFSYNC, Address, Iface, Node

IFF_UP = 0x1
IFF_BROADCAST = 0x2
IFF_LOOPBACK = 0x8
IFF_RUNNING = 0x40
IFF_PROMISC = 0x100
IFF_SIMPLEX = 0x800
IFF_MULTICAST = 0x8000


MEDIA_ACTIVE = "Ethernet autoselect (1000baseT full-duplex)"
MEDIA_NONE = "Ethernet autoselect (none)"


def flag_names(flags: int) -> tuple[str, ...]:
    return tuple(name for bit, name in IFF_NAMES if flags & bit)


def carp_running(node: Node, iface: Iface) -> bool:
    """IFF_RUNNING of a carp interface (carp_setrun()). A carpdev is always a physical
    interface of the node (carp_set_ifp(), build_node()), which cannot be destroyed."""
    sc = iface.carp
    assert sc is not None
    return (
        sc.carpdev is not None
        and iface.up
        and sc.vhosts[0].vhid > 0
        and bool(iface.inet4())
        and not sc.suppress
    )


def iface_flags(node: Node, iface: Iface) -> int:
    up = IFF_UP if iface.up else 0
    if iface.kind == ETHER:
        flags = IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST | up
        if iface.up:
            flags |= IFF_RUNNING
        if any(i.carp is not None and i.carp.carpdev == iface.name for i in node.interfaces):
            flags |= IFF_PROMISC  # carp_set_ifp() calls ifpromisc(ifp0, 1)
        return flags
    if iface.kind == LOOP:
        return IFF_LOOPBACK | IFF_MULTICAST | up | (IFF_RUNNING if iface.up else 0)
    if iface.kind == PFSYNC:
        assert iface.pfsync is not None
        return up | (IFF_RUNNING if iface.up else 0)  # 7.4+: RUNNING while pfsync is up
    if iface.kind == CARP:
        flags = IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST | up
        return flags | (IFF_RUNNING if carp_running(node, iface) else 0)
    return 0  # enc: flags=0<>


def netmask_hex(prefixlen: int) -> str:
    mask = (0xFFFFFFFF << (32 - prefixlen)) & 0xFFFFFFFF if prefixlen else 0
    return f"0x{mask:08x}"


def broadcast(addr: str, prefixlen: int) -> str:
    a, b, c, d = (int(x) for x in addr.split("."))
    value = (a << 24) | (b << 16) | (c << 8) | d
    host = (1 << (32 - prefixlen)) - 1 if prefixlen < 32 else 0
    value |= host
    return ".".join(str((value >> s) & 0xFF) for s in (24, 16, 8, 0))


def inet_text(addr: Address, flags: int) -> str:
    """in_status() / in6_status(): the text after `inet ` or `inet6 `."""
    if addr.inet6:
        return f"{addr.addr} prefixlen {addr.prefixlen}"
    text = f"{addr.addr} netmask {netmask_hex(addr.prefixlen)}"
    if flags & IFF_BROADCAST:
        text += f" broadcast {broadcast(addr.addr, addr.prefixlen)}"
    return text


def _carp_info(iface: Iface) -> CarpInfo | None:
    sc = iface.carp
    assert sc is not None
    if sc.vhosts[0].vhid == 0:
        return None  # carp_status(): no vhid, no carp: line
    nodes = tuple(CarpNode(v.vhid, v.state, v.advskew) for v in sc.vhosts)
    return CarpInfo(
        carpdev=sc.carpdev,
        advbase=sc.advbase,
        nodes=nodes,
        balancing=CARP_BAL_MODES[sc.balancing] if len(nodes) > 1 else None,
        carppeer=sc.peer,
    )


def carp_link_state(iface: Iface) -> str:
    """carp_set_state(): up (master) if a vhost is MASTER, down (backup) if one is BACKUP."""
    assert iface.carp is not None
    states = {v.state for v in iface.carp.vhosts}
    if MASTER in states:
        return "master"
    if "BACKUP" in states:
        return "backup"
    return "invalid"


def interface(node: Node, iface: Iface) -> Interface:
    """One block of `ifconfig` output, as the model."""
    flags = iface_flags(node, iface)
    carp = pfsync = None
    media = status = None
    if iface.kind == ETHER:
        active = iface.carrier and iface.up
        media = MEDIA_ACTIVE if active else MEDIA_NONE
        status = "active" if active else "no carrier"
    elif iface.kind == CARP:
        carp = _carp_info(iface)
        status = carp_link_state(iface)
    elif iface.kind == PFSYNC:
        sc = iface.pfsync
        assert sc is not None
        if sc.syncdev is not None:
            pfsync = PfsyncInfo(sc.syncdev, sc.maxupd, sc.defer, sc.syncpeer)
    elif iface.kind == ENC:
        status = "active"
    return Interface(
        name=iface.name,
        flags=flags,
        flag_names=flag_names(flags),
        mtu=iface.mtu,
        lladdr=iface.lladdr,
        description=iface.description,
        index=iface.index,
        priority=iface.priority,
        llprio=iface.llprio,
        carp=carp,
        pfsync=pfsync,
        groups=tuple(iface.groups),
        media=media,
        status=status,
        inet=tuple(inet_text(a, flags) for a in iface.addrs),
    )


def interfaces(node: Node, ifaces: Iterable[Iface] | None = None) -> tuple[Interface, ...]:
    return tuple(interface(node, i) for i in (node.interfaces if ifaces is None else ifaces))


def sysctl_values(node: Node) -> dict[str, int]:
    return {f"net.inet.carp.{k}": node.sysctl[k] for k in ("allow", "preempt", "log")}


def host_view(node: Node, groups: Iterable[str] | None = ("carp",)) -> HostView:
    """What one read by carpd-py would see: ifconfig, ifconfig -g GROUP, sysctl net.inet.carp.

    `groups=None` reports every group that exists; a group that does not exist is left out, as
    `ifconfig -g` fails for it.
    """
    if groups is None:
        names = sorted({g for i in node.interfaces for g in i.groups} | {"carp"})
    else:
        names = [g for g in dict.fromkeys(groups) if node.group_exists(g)]
    return HostView(
        interfaces=interfaces(node),
        group_demote={g: node.group_demote.get(g, 0) for g in names},
        sysctl=sysctl_values(node),
    )
