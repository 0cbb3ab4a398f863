"""Worlds to start from: the handbook pair, and a builder for custom ones.

The handbook pair (docs: seed/high-availability.zh.md): em0 WAN, em1 LAN, em2 SYNC; carp0 vhid
10 on em0 (VIP 203.0.113.1/29), carp1 vhid 20 on em1 (VIP 10.10.10.1/24), pfsync0 on em2;
node A advskew 0, node B advskew 100; net.inet.carp.preempt=1 and log=2 on both.

A built world is not settled: every vhost starts in INIT, as at boot, and `World.create`
runs the kernel, which logs the boot transitions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .kernel import Kernel
from .state import (
    CARP,
    CARP_BAL_MODES,
    ENC,
    ETHER,
    LOOP,
    PFSYNC,
    SYSCTL_DEFAULTS,
    Address,
    CarpSoftc,
    Iface,
    Node,
    PfsyncSoftc,
    Vhost,
    WorldState,
)

HANDBOOK_SYSCTL: Mapping[str, int] = {"allow": 1, "preempt": 1, "log": 2}


def _cidr(text: str) -> Address:
    addr, _, plen = text.partition("/")
    return Address(addr, int(plen) if plen else 32)


@dataclass(frozen=True)
class CarpSpec:
    """One configured carp interface, as /etc/hostname.carpN would make it."""

    name: str
    carpdev: str
    vip: str  # "203.0.113.1/29"
    vhids: Sequence[tuple[int, int]]  # (vhid, advskew), in carpnodes order
    balancing: str | None = None  # several vhids default to "ip", as the kernel does
    advbase: int = 1
    carppeer: str | None = None
    description: str | None = None
    key: str = "sharedsecret"
    groups: Sequence[str] = ()  # besides "carp"
    up: bool = True


@dataclass(frozen=True)
class NodeSpec:
    """One node: physical interfaces with their addresses, carp interfaces, pfsync."""

    name: str
    hostname: str
    ethers: Sequence[tuple[str, str]]  # (name, "address/prefixlen")
    carps: Sequence[CarpSpec] = ()
    syncdev: str | None = None  # None: no pfsync0 at all
    syncpeer: str | None = None
    sysctl: Mapping[str, int] = field(default_factory=lambda: dict(HANDBOOK_SYSCTL))
    egress: str | None = None  # the interface in group "egress" (default route)
    mac_prefix: str = "00:0c:29:00"


def build_node(spec: NodeSpec) -> Node:
    """The node as the kernel has it after /etc/netstart, before any election."""
    node = Node(name=spec.name, hostname=spec.hostname)
    node.sysctl = {**SYSCTL_DEFAULTS, **spec.sysctl}
    index = 1
    ethers: list[Iface] = []
    for i, (name, cidr) in enumerate(spec.ethers):
        groups = ["egress"] if name == spec.egress else []
        ethers.append(
            Iface(
                name, ETHER, index, lladdr=f"{spec.mac_prefix}:{i:02x}",
                groups=groups, addrs=[_cidr(cidr)],
            )
        )  # fmt: skip
        index += 1
    lo0 = Iface(
        "lo0", LOOP, index, mtu=32768, groups=["lo"],
        addrs=[Address("::1", 128, inet6=True), Address("127.0.0.1", 8)],
    )  # fmt: skip
    enc0 = Iface("enc0", ENC, index + 1, up=False, mtu=0, groups=["enc"])
    index += 2
    node.interfaces = [lo0, *ethers, enc0]
    if spec.syncdev is not None:
        pfsync = PfsyncSoftc(syncdev=spec.syncdev, syncpeer=spec.syncpeer)
        node.interfaces.append(
            Iface("pfsync0", PFSYNC, index, groups=["carp", "pfsync"], pfsync=pfsync)
        )
        index += 1
    physical = {name for name, _ in spec.ethers}
    for carp in spec.carps:
        if carp.carpdev not in physical:
            raise ValueError(f"node {spec.name}: {carp.name}: carpdev {carp.carpdev} is no ether")
        node.interfaces.append(_carp(carp, index))
        index += 1
    node.next_index = index
    node.group_demote = {g: 0 for i in node.interfaces for g in i.groups}
    node.group_demote.setdefault("carp", 0)
    names = [i.name for i in node.interfaces]
    if len(set(names)) != len(names):
        raise ValueError(f"node {spec.name}: duplicate interface names")
    return node


def _carp(spec: CarpSpec, index: int) -> Iface:
    if not spec.vhids:
        raise ValueError(f"{spec.name}: no vhid")
    vhids = [v for v, _ in spec.vhids]
    skews = [s for _, s in spec.vhids]
    # carp_vhids_ioctl(): one vhid means no balancing; several default to ip
    balancing = CARP_BAL_MODES.index(spec.balancing or "ip") if len(spec.vhids) > 1 else 0
    sc = CarpSoftc(
        carpdev=spec.carpdev,
        advbase=spec.advbase,
        vhosts=[Vhost(v, s) for v, s in sorted(spec.vhids)],
        cfg_vhids=vhids,
        cfg_advskews=skews,
        balancing=balancing,
        peer=spec.carppeer,
        key=spec.key,
    )
    return Iface(
        spec.name,
        CARP,
        index,
        up=spec.up,
        priority=15,
        lladdr=Kernel.vhe_enaddr(sc),
        description=spec.description,
        groups=["carp", *spec.groups],
        addrs=[_cidr(spec.vip)],
        carp=sc,
    )


def build_world(*nodes: NodeSpec, topology: str = "custom") -> WorldState:
    for spec in nodes:
        if not spec.name.isalnum():
            raise ValueError(f"node name {spec.name!r}: letters and digits only (it names files)")
    built = [build_node(n) for n in nodes]
    if len({n.name for n in built}) != len(built):
        raise ValueError("duplicate node names")
    return WorldState(nodes={n.name: n for n in built}, topology=topology)


def handbook_node(name: str, *, extra: Sequence[CarpSpec] = ()) -> NodeSpec:
    """Node "A" (.2, advskew 0) or "B" (.3, advskew 100) of the handbook pair."""
    if name not in ("A", "B"):
        raise ValueError(f"the handbook has nodes A and B, not {name!r}")
    host = 2 if name == "A" else 3
    skew = 0 if name == "A" else 100
    return NodeSpec(
        name=name,
        hostname="fw1" if name == "A" else "fw2",
        ethers=(
            ("em0", f"203.0.113.{host}/29"),
            ("em1", f"10.10.10.{host}/24"),
            ("em2", f"10.255.255.{host}/30"),
        ),
        carps=(
            CarpSpec("carp0", "em0", "203.0.113.1/29", ((10, skew),)),
            CarpSpec("carp1", "em1", "10.10.10.1/24", ((20, skew),)),
            *extra,
        ),
        syncdev="em2",
        egress="em0",
        mac_prefix=f"00:0c:29:0{name.lower()}:00",
    )


def handbook() -> WorldState:
    return build_world(handbook_node("A"), handbook_node("B"), topology="handbook")


def single() -> WorldState:
    """Node A of the handbook alone: its peer is gone (every vhost ends up MASTER)."""
    return build_world(handbook_node("A"), topology="single")


def multivhid() -> WorldState:
    """The handbook plus carp2 on em1: vhids 1 and 2, balancing ip, one MASTER on each node."""
    a = CarpSpec("carp2", "em1", "10.10.10.100/24", ((1, 0), (2, 100)), balancing="ip")
    b = CarpSpec("carp2", "em1", "10.10.10.100/24", ((1, 100), (2, 0)), balancing="ip")
    return build_world(
        handbook_node("A", extra=(a,)), handbook_node("B", extra=(b,)), topology="multivhid"
    )


def scale(count: int) -> WorldState:
    """Two nodes with `count` carp interfaces (up to 510): carpI on em(I % 2), vhid I//2 + 1."""
    if not 1 <= count <= 510:
        raise ValueError("scale: 1 to 510 carp interfaces (255 vhids on each of em0, em1)")
    specs = []
    for name, host, skew in (("A", 2, 0), ("B", 3, 100)):
        carps = []
        for i in range(count):
            n = i // 2
            vip = f"10.{1 + i % 2}.{1 + n // 250}.{n % 250 + 1}/16"
            carps.append(CarpSpec(f"carp{i}", f"em{i % 2}", vip, ((n + 1, skew),)))
        specs.append(
            NodeSpec(
                name=name,
                hostname=f"fw{host - 1}",
                ethers=(
                    ("em0", f"10.1.0.{host}/16"),
                    ("em1", f"10.2.0.{host}/16"),
                    ("em2", f"10.255.255.{host}/30"),
                ),
                carps=tuple(carps),
                syncdev="em2",
                egress="em0",
                mac_prefix=f"00:0c:29:0{name.lower()}:00",
            )
        )
    return build_world(*specs, topology=f"scale:{count}")


TOPOLOGIES: dict[str, Callable[[], WorldState]] = {
    "handbook": handbook,
    "single": single,
    "multivhid": multivhid,
}


def named(topology: str) -> WorldState:
    """A topology by name: handbook, single, multivhid, or scale:N."""
    if topology.startswith("scale:"):
        count = topology.partition(":")[2]
        if not count.isdigit():
            raise ValueError(f"scale:N needs a number, not {count!r}")
        return scale(int(count))
    try:
        return TOPOLOGIES[topology]()
    except KeyError:
        known = ", ".join([*TOPOLOGIES, "scale:N"])
        raise ValueError(f"unknown topology {topology!r} (known: {known})") from None
