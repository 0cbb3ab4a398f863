"""The simulated kernel state of one or two OpenBSD nodes, and its JSON form.

Mutable dataclasses, changed only inside a store transaction (`store.py`) and settled by the
kernel rules (`kernel.py`). Field names follow sys/netinet/ip_carp.c and sys/net/if_pfsync.c
where there is a kernel counterpart (sc_suppress, sc_demote_cnt, sc_sync_if_down, ...).

Time is simulated time in seconds (see `WorldState.sim_time`): the carp timers of each vhost
(`ad_at`, `md_at`) and pfsync's bulk request timers are absolute simulated times, run by
`Kernel.advance()` in order up to "now" whenever anyone looks at the world.
"""

from __future__ import annotations

from dataclasses import dataclass, field

TYPE_CHECKING = False  # typing is not imported at run time: the executables start fast
if TYPE_CHECKING:
    from typing import Any

FORMAT = 2

INIT, BACKUP, MASTER = "INIT", "BACKUP", "MASTER"
CARP_BAL_MODES = ("none", "ip", "ip-stealth", "ip-unicast")  # ip_carp.h CARP_BAL_MODES
CARP_MAXNODES = 32
IFNAMSIZ = 16

SYSCTL_DEFAULTS = {"allow": 1, "preempt": 0, "log": 2}  # carpctl_allow, _preempt, _log
SYSCTL_ORDER = ("allow", "preempt", "log")  # CARPCTL_NAMES order (stats is a struct)

# Interface kinds: which driver answers the ioctls.
ETHER, LOOP, ENC, PFSYNC, CARP = "ether", "loop", "enc", "pfsync", "carp"
CLONERS = ("carp", "enc", "lo", "pfsync")  # the cloners the simulated kernel knows


@dataclass
class Vhost:
    """One carp_vhost_entry."""

    vhid: int
    advskew: int
    state: str = INIT
    ad_at: float | None = None  # ad_tmo: when a MASTER sends its next advertisement
    md_at: float | None = None  # md_tmo: when a BACKUP declares the master down


@dataclass
class CarpSoftc:
    """The carp part of a carp interface (struct carp_softc)."""

    carpdev: str | None = None
    advbase: int = 1
    vhosts: list[Vhost] = field(default_factory=lambda: [Vhost(0, 0)])  # sorted by vhid
    cfg_vhids: list[int] = field(default_factory=list)  # sc_vhids: configured order
    cfg_advskews: list[int] = field(default_factory=list)  # sc_advskews: configured order
    balancing: int = 0  # index in CARP_BAL_MODES
    peer: str | None = None  # None: multicast to 224.0.0.18 (INADDR_CARP_GROUP)
    key: str = ""
    suppress: bool = False  # sc_suppress: carpdev has no link
    demote_cnt: int = 0  # sc_demote_cnt: this interface's own share of the group counters

    def to_json(self) -> dict[str, Any]:
        return {
            "carpdev": self.carpdev,
            "advbase": self.advbase,
            "vhosts": [[v.vhid, v.advskew, v.state, v.ad_at, v.md_at] for v in self.vhosts],
            "cfg_vhids": self.cfg_vhids,
            "cfg_advskews": self.cfg_advskews,
            "balancing": self.balancing,
            "peer": self.peer,
            "key": self.key,
            "suppress": self.suppress,
            "demote_cnt": self.demote_cnt,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CarpSoftc:
        return cls(
            carpdev=d["carpdev"],
            advbase=d["advbase"],
            vhosts=[Vhost(*v) for v in d["vhosts"]],
            cfg_vhids=list(d["cfg_vhids"]),
            cfg_advskews=list(d["cfg_advskews"]),
            balancing=d["balancing"],
            peer=d["peer"],
            key=d["key"],
            suppress=d["suppress"],
            demote_cnt=d["demote_cnt"],
        )


@dataclass
class PfsyncSoftc:
    """The pfsync part of pfsync0 (struct pfsync_softc)."""

    syncdev: str | None = None
    syncpeer: str | None = None  # None: multicast to 224.0.0.240 (INADDR_PFSYNC_GROUP)
    maxupd: int = 128
    defer: bool = False
    # if_pfsync.c r1.332 (OpenBSD 7.4+): RUNNING is "pfsync is up" (pfsync_up/pfsync_down),
    # kept here as the interface's IFF_UP; the syncdev's link only moves the demote counter.
    sync_if_down: bool = False  # sc_sync_if_down: holds +1 on the carp demote counter
    breq: str = "none"  # sc_bulk_req.req_state: none, start, sent, done
    breq_demoted: bool = False  # sc_bulk_req.req_demoted: holds +32
    breq_tries: int = 0  # sc_bulk_req.req_tries
    breq_at: float | None = None  # sc_bulk_req.req_tmo
    bus_at: float | None = None  # when the peer's bulk update (BUS start .. end) arrives

    def to_json(self) -> dict[str, Any]:
        return {
            "syncdev": self.syncdev,
            "syncpeer": self.syncpeer,
            "maxupd": self.maxupd,
            "defer": self.defer,
            "sync_if_down": self.sync_if_down,
            "breq": self.breq,
            "breq_demoted": self.breq_demoted,
            "breq_tries": self.breq_tries,
            "breq_at": self.breq_at,
            "bus_at": self.bus_at,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PfsyncSoftc:
        return cls(
            syncdev=d["syncdev"],
            syncpeer=d["syncpeer"],
            maxupd=d["maxupd"],
            defer=d["defer"],
            sync_if_down=d["sync_if_down"],
            breq=d["breq"],
            breq_demoted=d["breq_demoted"],
            breq_tries=d["breq_tries"],
            breq_at=d["breq_at"],
            bus_at=d["bus_at"],
        )


@dataclass
class Address:
    """An IPv4 (or IPv6) address on an interface."""

    addr: str
    prefixlen: int
    inet6: bool = False

    def to_json(self) -> list[Any]:
        return [self.addr, self.prefixlen, self.inet6]


@dataclass
class Iface:
    """One interface: what ifconfig shows and what the kernel keeps about it."""

    name: str
    kind: str
    index: int
    up: bool = True  # IFF_UP, the administrative state
    carrier: bool = True  # physical link (ether only)
    mtu: int = 1500
    priority: int = 0
    llprio: int = 3
    lladdr: str | None = None
    description: str | None = None
    groups: list[str] = field(default_factory=list)  # "all" is implicit and never shown
    addrs: list[Address] = field(default_factory=list)
    carp: CarpSoftc | None = None
    pfsync: PfsyncSoftc | None = None

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "index": self.index,
            "up": self.up,
            "carrier": self.carrier,
            "mtu": self.mtu,
            "priority": self.priority,
            "llprio": self.llprio,
            "lladdr": self.lladdr,
            "description": self.description,
            "groups": self.groups,
            "addrs": [a.to_json() for a in self.addrs],
        }
        if self.carp is not None:
            d["carp"] = self.carp.to_json()
        if self.pfsync is not None:
            d["pfsync"] = self.pfsync.to_json()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Iface:
        carp = d.get("carp")
        pfsync = d.get("pfsync")
        return cls(
            name=d["name"],
            kind=d["kind"],
            index=d["index"],
            up=d["up"],
            carrier=d["carrier"],
            mtu=d["mtu"],
            priority=d["priority"],
            llprio=d["llprio"],
            lladdr=d["lladdr"],
            description=d["description"],
            groups=list(d["groups"]),
            addrs=[Address(a[0], a[1], a[2]) for a in d["addrs"]],
            carp=CarpSoftc.from_json(carp) if carp is not None else None,
            pfsync=PfsyncSoftc.from_json(pfsync) if pfsync is not None else None,
        )

    @property
    def link_up(self) -> bool:
        """What carp_carpdev_state and pfsync_syncdev_state test: UP and not LINK_STATE_DOWN."""
        return self.up and (self.carrier or self.kind != ETHER)

    def inet4(self) -> list[str]:
        return [a.addr for a in self.addrs if not a.inet6]


@dataclass
class Node:
    """One simulated OpenBSD machine."""

    name: str
    hostname: str
    interfaces: list[Iface] = field(default_factory=list)  # in ifconfig (if_list) order
    group_demote: dict[str, int] = field(default_factory=dict)  # ifg_carp_demoted per group
    sysctl: dict[str, int] = field(default_factory=lambda: dict(SYSCTL_DEFAULTS))
    next_index: int = 1
    unprivileged: bool = False  # set commands fail with EPERM, as for a non-root user
    hang: float = 0.0  # the executables sleep this long before answering
    garbage: bool = False  # the executables print output that cannot be parsed
    truncate: int | None = None  # `ifconfig` (the full listing) prints only this many chars
    # A directory laid out like /sys/class/net: the node's ifconfig takes each physical
    # interface's carrier from it (see carrier.py); None: the state file is the truth.
    carrier_from: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "hostname": self.hostname,
            "interfaces": [i.to_json() for i in self.interfaces],
            "group_demote": self.group_demote,
            "sysctl": self.sysctl,
            "next_index": self.next_index,
            "unprivileged": self.unprivileged,
            "hang": self.hang,
            "garbage": self.garbage,
            "truncate": self.truncate,
            "carrier_from": self.carrier_from,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Node:
        return cls(
            name=d["name"],
            hostname=d["hostname"],
            interfaces=[Iface.from_json(i) for i in d["interfaces"]],
            group_demote=dict(d["group_demote"]),
            sysctl=dict(d["sysctl"]),
            next_index=d["next_index"],
            unprivileged=d["unprivileged"],
            hang=d["hang"],
            garbage=d["garbage"],
            truncate=d.get("truncate"),
            carrier_from=d.get("carrier_from"),
        )

    def get(self, name: str) -> Iface | None:
        for iface in self.interfaces:
            if iface.name == name:
                return iface
        return None

    def members(self, group: str) -> list[Iface]:
        if group == "all":
            return list(self.interfaces)
        return [i for i in self.interfaces if group in i.groups]

    def group_exists(self, group: str) -> bool:
        """ "carp" is created at attach and kept even when empty; "all" always exists."""
        return group in ("all", "carp") or any(group in i.groups for i in self.interfaces)

    def carp_demote_count(self, iface: Iface) -> int:
        """carp_group_demote_count(): the sum over the interface's groups, capped at 255."""
        count = sum(self.group_demote.get(g, 0) for g in iface.groups)
        count += self.group_demote.get("all", 0)
        if count == 0 and iface.carp is not None and iface.carp.demote_cnt:
            count = iface.carp.demote_cnt
        return min(count, 255)


@dataclass
class WorldState:
    """Everything in the state file but the event log."""

    nodes: dict[str, Node]
    topology: str = "custom"
    event_seq: int = 0
    now: float = 0.0  # the simulated time the world was last advanced to
    due: float | None = None  # the earliest pending timer; None: at rest until changed
    epoch: float = 0.0  # the wall-clock time at which simulated time equals wall time
    timescale: float = 1.0  # simulated seconds per wall-clock second

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "topology": self.topology,
            "event_seq": self.event_seq,
            "now": self.now,
            "due": self.due,
            "epoch": self.epoch,
            "timescale": self.timescale,
            "nodes": [n.to_json() for n in self.nodes.values()],
        }

    def sim_time(self, wall: float) -> float:
        """The simulated time at wall-clock time `wall` (never before `now`)."""
        return max(self.now, self.epoch + (wall - self.epoch) * self.timescale)

    def wall_time(self, sim: float) -> float:
        """The wall-clock time at which the simulated clock reads `sim`."""
        return self.epoch + (sim - self.epoch) / self.timescale

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WorldState:
        if d.get("format") != FORMAT:
            raise ValueError(f"not a carpd-sim state file (format {d.get('format')!r})")
        nodes = [Node.from_json(n) for n in d["nodes"]]
        return cls(
            nodes={n.name: n for n in nodes},
            topology=d["topology"],
            event_seq=d["event_seq"],
            now=d["now"],
            due=d["due"],
            epoch=d["epoch"],
            timescale=d["timescale"],
        )

    def node(self, name: str) -> Node:
        try:
            return self.nodes[name]
        except KeyError:
            known = ", ".join(self.nodes)
            raise KeyError(f"no node {name!r} in this world (nodes: {known})") from None
