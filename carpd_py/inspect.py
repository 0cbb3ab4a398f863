"""What `carpctl inspect` shows: one read of the host as a document, and what an admin must fix.

Pure: a HostView and a Config in, plain JSON-able data out.
"""

from __future__ import annotations

from typing import Any

from .config import Config
from .model import HostView, Interface

SYSCTL_KEYS = ("net.inet.carp.allow", "net.inet.carp.preempt", "net.inet.carp.log")


def managed_carp(view: HostView, config: Config) -> tuple[Interface, ...]:
    """The carp interfaces carpd-py manages: the configured ones that are present, or all."""
    if not config.demote.interfaces:
        return view.carp
    wanted = set(config.demote.interfaces)
    return tuple(i for i in view.carp if i.name in wanted)


def pfsync_interface(view: HostView, config: Config) -> Interface | None:
    name = config.sync.interface if config.sync is not None else "pfsync0"
    iface = view.get(name)
    if iface is None and config.sync is None:
        iface = next((i for i in view.interfaces if i.is_pfsync), None)
    return iface


def link_status(view: HostView, name: str | None) -> str | None:
    iface = view.get(name) if name else None
    return iface.status if iface is not None else None


def warnings(view: HostView, config: Config) -> list[str]:
    """What an admin must fix, in plain words, most important first."""
    out: list[str] = []
    if config.demote.method == "advskew" and view.sysctl.get("net.inet.carp.preempt") == 0:
        out.append(
            "net.inet.carp.preempt=0: an advskew demotion will not move mastership "
            "(set net.inet.carp.preempt=1 on both nodes)"
        )
    for name in config.demote.interfaces:
        if view.get(name) is None:
            out.append(f"{name}: configured in demote.interfaces but missing")
        elif view.get(name) not in view.carp:
            out.append(f"{name}: configured in demote.interfaces but has no vhid")
    if config.sync is not None and view.get(config.sync.interface) is None:
        out.append(f"{config.sync.interface}: configured in sync.interface but missing")
    for iface in managed_carp(view, config):
        assert iface.carp is not None
        dev = iface.carp.carpdev
        if dev is None:
            out.append(f"{iface.name}: no carpdev")
        elif link_status(view, dev) not in ("active", None):
            out.append(f"{iface.name}: carpdev {dev} has no carrier ({link_status(view, dev)})")
    pfsync = pfsync_interface(view, config)
    if pfsync is not None and pfsync.pfsync is not None:
        dev = pfsync.pfsync.syncdev
        if link_status(view, dev) not in ("active", None):
            out.append(f"{pfsync.name}: syncdev {dev} has no carrier ({link_status(view, dev)})")
    return out


def inspect_report(view: HostView, config: Config) -> dict[str, Any]:
    managed = {i.name for i in managed_carp(view, config)}
    carp = [
        {
            "interface": iface.name,
            "vhid": node.vhid,
            "state": node.state,
            "advbase": iface.carp.advbase,
            "advskew": node.advskew,
            "carpdev": iface.carp.carpdev,
            "carppeer": iface.carp.carppeer,
            "status": iface.status,
            "balancing": iface.carp.balancing,
            "managed": iface.name in managed,
        }
        for iface in view.carp
        if iface.carp is not None
        for node in iface.carp.nodes
    ]
    pfsync: dict[str, Any] | None = None
    ps = pfsync_interface(view, config)
    if ps is not None:
        info = ps.pfsync
        pfsync = {
            "interface": ps.name,
            "up": ps.up and ps.running,
            "syncdev": info.syncdev if info else None,
            "syncpeer": info.syncpeer if info else None,
            "maxupd": info.maxupd if info else None,
            "defer": info.defer if info else None,
            "syncdev_status": link_status(view, info.syncdev if info else None),
        }
    return {
        "carp": carp,
        "pfsync": pfsync,
        "groups": {g: {"demote": n} for g, n in sorted(view.group_demote.items())},
        "sysctl": {k: view.sysctl[k] for k in SYSCTL_KEYS if k in view.sysctl},
        "links": {i.name: i.status for i in view.interfaces if i.media is not None},
        "warnings": warnings(view, config),
    }


def format_table(report: dict[str, Any]) -> str:
    """The report for people: aligned columns, then one line per other fact."""
    rows = [("INTERFACE", "VHID", "STATE", "ADVBASE", "ADVSKEW", "CARPDEV", "STATUS", "MANAGED")]
    for c in report["carp"]:
        rows.append(
            (
                c["interface"],
                str(c["vhid"]),
                c["state"],
                str(c["advbase"]),
                str(c["advskew"]),
                c["carpdev"] or "none",
                c["status"] or "-",
                "yes" if c["managed"] else "no",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    if len(rows) == 1:
        lines.append("(no carp interface with a vhid)")
    ps = report["pfsync"]
    if ps is None:
        lines.append("pfsync: none")
    else:
        peer = f" syncpeer {ps['syncpeer']}" if ps["syncpeer"] else ""
        lines.append(
            f"pfsync: {ps['interface']} {'up' if ps['up'] else 'DOWN'}"
            f" syncdev {ps['syncdev'] or 'none'} ({ps['syncdev_status'] or 'no status'}){peer}"
        )
    for group, g in report["groups"].items():
        lines.append(f"group {group}: demote count {g['demote']}")
    if report["sysctl"]:
        lines.append(" ".join(f"{k}={v}" for k, v in report["sysctl"].items()))
    if report["links"]:
        lines.append("links: " + ", ".join(f"{k} {v or '-'}" for k, v in report["links"].items()))
    lines.extend(f"warning: {w}" for w in report["warnings"])
    return "\n".join(lines) + "\n"
