"""What carpd-py sees of a host: frozen values, produced by `parse`, printed by `sim.render`.

Nothing here does I/O. One `HostView` is one read of the host: one `ifconfig` run, one
`ifconfig -g GROUP` per group of interest, one `sysctl net.inet.carp`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

# carp(4) states as ifconfig prints them; "<UNKNOWN>" for an out-of-range value.
CARP_STATES = ("INIT", "BACKUP", "MASTER")
UNKNOWN_STATE = "<UNKNOWN>"


@dataclass(frozen=True)
class CarpNode:
    """One vhid of a carp interface."""

    vhid: int
    state: str  # "INIT", "BACKUP", "MASTER" or "<UNKNOWN>"
    advskew: int


@dataclass(frozen=True)
class CarpInfo:
    """The `carp:` line(s) of a carp interface that has at least one vhid.

    One vhid prints `carp: STATE carpdev DEV vhid N advbase N advskew N[ carppeer A]`
    (balancing is None then); several vhids print the carpnodes form with `balancing MODE`.
    """

    carpdev: str | None  # None when ifconfig prints "none"
    advbase: int
    nodes: tuple[CarpNode, ...]
    balancing: str | None = None  # only printed (and only known) with several vhids
    carppeer: str | None = None

    @property
    def multi(self) -> bool:
        return len(self.nodes) > 1


@dataclass(frozen=True)
class PfsyncInfo:
    """The `pfsync:` line; missing when no syncdev is set."""

    syncdev: str
    maxupd: int
    defer: bool
    syncpeer: str | None = None


@dataclass(frozen=True)
class Interface:
    """One interface block of `ifconfig` output. Unknown lines are ignored by the parser."""

    name: str
    flags: int
    flag_names: tuple[str, ...]
    mtu: int
    rdomain: int | None = None
    lladdr: str | None = None
    description: str | None = None
    index: int | None = None
    priority: int | None = None
    llprio: int | None = None
    carp: CarpInfo | None = None
    pfsync: PfsyncInfo | None = None
    groups: tuple[str, ...] = ()
    media: str | None = None
    status: str | None = None  # "active", "no carrier", "master", "backup", "invalid", ...
    inet: tuple[str, ...] = ()  # the text after "inet " / "inet6 ", kept verbatim

    @property
    def up(self) -> bool:
        return "UP" in self.flag_names

    @property
    def running(self) -> bool:
        return "RUNNING" in self.flag_names

    @property
    def is_carp(self) -> bool:
        return self.name.startswith("carp") and self.name[4:].isdigit()

    @property
    def is_pfsync(self) -> bool:
        return self.name.startswith("pfsync") and self.name[6:].isdigit()


def _frozen_map(m: Mapping[str, int] | None = None) -> Mapping[str, int]:
    return MappingProxyType(dict(m or {}))


@dataclass(frozen=True)
class HostView:
    """One read of the host."""

    interfaces: tuple[Interface, ...]
    group_demote: Mapping[str, int] = field(default_factory=_frozen_map)
    sysctl: Mapping[str, int] = field(default_factory=_frozen_map)

    @cached_property
    def _by_name(self) -> Mapping[str, Interface]:
        # Built once per read: the poll looks interfaces up by name many times.
        return MappingProxyType({i.name: i for i in self.interfaces})

    def get(self, name: str) -> Interface | None:
        return self._by_name.get(name)

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._by_name)

    @property
    def carp(self) -> tuple[Interface, ...]:
        """The carp interfaces that have at least one vhid, in ifconfig order."""
        return tuple(i for i in self.interfaces if i.is_carp and i.carp is not None)


# IFFBITS of sbin/ifconfig/ifconfig.c: the low 16 if_flags bits (ifm_flags), in bit order;
# rtview.py reads a routing message's flags with it, the simulator prints them with it.
IFF_NAMES = (
    (0x1, "UP"),
    (0x2, "BROADCAST"),
    (0x4, "DEBUG"),
    (0x8, "LOOPBACK"),
    (0x10, "POINTOPOINT"),
    (0x20, "STATICARP"),
    (0x40, "RUNNING"),
    (0x80, "NOARP"),
    (0x100, "PROMISC"),
    (0x200, "ALLMULTI"),
    (0x400, "OACTIVE"),
    (0x800, "SIMPLEX"),
    (0x1000, "LINK0"),
    (0x2000, "LINK1"),
    (0x4000, "LINK2"),
    (0x8000, "MULTICAST"),
)
