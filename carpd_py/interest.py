"""Which routing messages call for a read of the host at once. Pure.

The interfaces that matter, by the last read: every managed carp interface (its role changes
arrive as link-state changes: carp_set_state() in sys/netinet/ip_carp.c), each one's carpdev,
the pfsync interface and its syncdev. An interface created or destroyed, a message for an
index the last read did not show, and RTM_DESYNC (messages were lost) always matter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .config import Config
from .inspect import managed_carp, pfsync_interface
from .model import HostView
from .rtmsg import Desync, IfAnnounce, IfInfo, Message


@dataclass(frozen=True)
class Interest:
    """What one read says to watch: interface indexes by name, and the names that matter."""

    names: frozenset[str]
    by_index: Mapping[int, str]


def interest(view: HostView | None, config: Config) -> Interest:
    if view is None:
        return Interest(frozenset(), {})
    names: set[str] = set()
    for iface in managed_carp(view, config):
        names.add(iface.name)
        if iface.carp is not None and iface.carp.carpdev is not None:
            names.add(iface.carp.carpdev)
    pfsync = pfsync_interface(view, config)
    if config.sync is not None:
        names.add(config.sync.interface)
    if pfsync is not None:
        names.add(pfsync.name)
        if pfsync.pfsync is not None:
            names.add(pfsync.pfsync.syncdev)
    by_index = {i.index: i.name for i in view.interfaces if i.index is not None}
    return Interest(frozenset(names), by_index)


def why(messages: Iterable[Message], seen: Interest) -> str | None:
    """The first reason among these messages to read the host now, or None."""
    for m in messages:
        if isinstance(m, Desync):
            return "RTM_DESYNC"
        if isinstance(m, IfAnnounce):
            return f"{m.name} {'created' if m.arrival else 'destroyed'}"
        if isinstance(m, IfInfo):
            name = seen.by_index.get(m.index)
            if name is None:
                return f"interface index {m.index} not seen before"
            if name in seen.names:
                return f"{name} changed"
    return None
