"""Print the model the way OpenBSD prints it: the exact inverse of `carpd_py.parse`.

Byte-exact per sbin/ifconfig/ifconfig.c as written down in the OpenBSD reference: one tab of
indentation, two for the per-vhid lines of a multi-vhid carp interface; a field that is None or
empty prints no line. `parse_ifconfig(render_ifconfig(x)) == x` for every valid `x`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..model import CarpInfo, Interface, PfsyncInfo

__all__ = ["render_group", "render_ifconfig", "render_sysctl"]


def _header(iface: Interface) -> str:
    # ifconfig.c prints rdomain, metric and mtu only when non-zero.
    line = f"{iface.name}: flags={iface.flags:x}<{','.join(iface.flag_names)}>"
    if iface.rdomain:
        line += f" rdomain {iface.rdomain}"
    if iface.mtu:
        line += f" mtu {iface.mtu}"
    return line


def _index(iface: Interface) -> str | None:
    parts = [
        f"{key} {value}"
        for key, value in (
            ("index", iface.index),
            ("priority", iface.priority),
            ("llprio", iface.llprio),
        )
        if value is not None
    ]
    return "\t" + " ".join(parts) if parts else None


def _carp(carp: CarpInfo) -> list[str]:
    """No line without a vhid; one line for one vhid; the carpnodes form for several."""
    if not carp.nodes:
        return []
    dev = carp.carpdev if carp.carpdev is not None else "none"
    peer = f" carppeer {carp.carppeer}" if carp.carppeer is not None else ""
    if not carp.multi:
        node = carp.nodes[0]
        return [
            f"\tcarp: {node.state} carpdev {dev} vhid {node.vhid} advbase {carp.advbase}"
            f" advskew {node.advskew}{peer}"
        ]
    balancing = carp.balancing if carp.balancing is not None else "none"
    lines = [f"\tcarp: carpdev {dev} advbase {carp.advbase} balancing {balancing}{peer}"]
    lines.extend(f"\t\tstate {n.state} vhid {n.vhid} advskew {n.advskew}" for n in carp.nodes)
    return lines


def _pfsync(pfsync: PfsyncInfo) -> str:
    peer = f"syncpeer: {pfsync.syncpeer} " if pfsync.syncpeer is not None else ""
    defer = "on" if pfsync.defer else "off"
    return f"\tpfsync: syncdev: {pfsync.syncdev} {peer}maxupd: {pfsync.maxupd} defer: {defer}"


def _inet(text: str) -> str:
    # The model keeps the text after the keyword; an IPv6 address always has a colon.
    family = "inet6" if ":" in text.split(" ", 1)[0] else "inet"
    return f"\t{family} {text}"


def _interface(iface: Interface) -> list[str]:
    lines = [_header(iface)]
    if iface.lladdr:
        lines.append(f"\tlladdr {iface.lladdr}")
    if iface.description:
        lines.append(f"\tdescription: {iface.description}")
    index = _index(iface)
    if index is not None:
        lines.append(index)
    if iface.carp is not None:
        lines.extend(_carp(iface.carp))
    if iface.pfsync is not None:
        lines.append(_pfsync(iface.pfsync))
    if iface.groups:
        lines.append("\tgroups: " + " ".join(iface.groups))
    if iface.media:
        lines.append(f"\tmedia: {iface.media}")
    if iface.status:
        lines.append(f"\tstatus: {iface.status}")
    lines.extend(_inet(text) for text in iface.inet)
    return lines


def render_ifconfig(interfaces: Iterable[Interface]) -> str:
    """What `ifconfig` prints for these interfaces, in the given order."""
    return "".join(line + "\n" for iface in interfaces for line in _interface(iface))


def render_group(name: str, demote: int) -> str:
    """What `ifconfig -g NAME` prints."""
    return f"{name}: carp demote count {demote}\n"


def render_sysctl(values: Mapping[str, int]) -> str:
    """What `sysctl net.inet.carp` prints (read form), in the mapping's order."""
    return "".join(f"{name}={value}\n" for name, value in values.items())
