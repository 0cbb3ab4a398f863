"""What one poll says about each check, and what changed on the carp side. Pure.

Only what was read says that the SYNC link is down: a failed read gives the sync check no
round at all, never a bad one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .config import Config, SyncConfig
from .decide import Policy, VhidKey
from .hysteresis import Round
from .inspect import managed_carp
from .model import HostView

SYNC = "sync"


def upstream_check(name: str) -> str:
    return f"upstream:{name}"


def check_names(config: Config) -> tuple[str, ...]:
    names = [SYNC] if config.sync is not None else []
    names.extend(upstream_check(u.name) for u in config.upstream)
    return tuple(names)


def check_params(config: Config) -> dict[str, tuple[int, int]]:
    """check name -> (fall, rise)."""
    out = {upstream_check(u.name): (u.fall, u.rise) for u in config.upstream}
    if config.sync is not None:
        out[SYNC] = (config.sync.fall, config.sync.rise)
    return out


def policy_of(config: Config) -> Policy:
    d = config.demote
    return Policy(d.method, d.advskew, d.carpdemote, d.group, d.hold_down)


def sync_link_problem(view: HostView, sync: SyncConfig) -> str | None:
    """Why the SYNC link is down according to this read, or None when it looks fine."""
    iface = view.get(sync.interface)
    if iface is None:
        return f"{sync.interface} missing"
    if not (iface.up and iface.running):
        return f"{sync.interface} not UP and RUNNING"
    if iface.pfsync is None:
        return f"{sync.interface} has no syncdev"
    dev = view.get(iface.pfsync.syncdev)
    if dev is None:
        return f"syncdev {iface.pfsync.syncdev} missing"
    if dev.status != "active":
        return f"syncdev {dev.name} {dev.status or 'has no status'}"
    return None


def sync_round(view: HostView | None, sync: SyncConfig, peer_answered: bool | None) -> Round:
    """The sync check's round: HARD when the read shows the link down, BAD when the peer
    (if configured) did not answer, NONE when the host could not be read."""
    if view is None:
        return Round.NONE
    if sync_link_problem(view, sync) is not None:
        return Round.HARD
    if sync.peer is not None and not peer_answered:
        return Round.BAD
    return Round.GOOD


def managed_advskews(view: HostView, config: Config) -> dict[VhidKey, int]:
    return {
        (iface.name, node.vhid): node.advskew
        for iface in managed_carp(view, config)
        if iface.carp is not None
        for node in iface.carp.nodes
    }


def released_advskews(
    view: HostView, config: Config, records: Mapping[VhidKey, object]
) -> dict[VhidKey, int]:
    """vhids carpd-py has a record of but does not manage (any more)."""
    managed = {i.name for i in managed_carp(view, config)}
    return {
        (iface.name, node.vhid): node.advskew
        for iface in view.carp
        if iface.name not in managed and iface.carp is not None
        for node in iface.carp.nodes
        if (iface.name, node.vhid) in records
    }


def roles(view: HostView) -> dict[VhidKey, str]:
    return {
        (iface.name, node.vhid): node.state
        for iface in view.carp
        if iface.carp is not None
        for node in iface.carp.nodes
    }


@dataclass(frozen=True)
class RoleChange:
    interface: str
    vhid: int
    before: str
    after: str


def role_changes(before: Mapping[VhidKey, str], after: Mapping[VhidKey, str]) -> list[RoleChange]:
    """carp state changes between two reads (a vhid that appears is not a change)."""
    return [
        RoleChange(key[0], key[1], before[key], state)
        for key, state in after.items()
        if key in before and before[key] != state
    ]
