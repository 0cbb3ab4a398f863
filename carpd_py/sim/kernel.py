"""The simulated kernel: the ioctls ifconfig uses, the link hooks, and `settle()`.

Follows sys/netinet/ip_carp.c r1.370 (carp_ioctl, carp_set_ifp, carp_vhids_ioctl,
carp_setrun, carp_set_state, carp_group_demote_adj, carp_carpdev_state), sys/net/if_pfsync.c
(pfsync_syncdev_state) and sys/net/if.c (if_setgroupattribs, if_getgroupattribs). Time does
not pass: after every change `settle()` runs the link hooks and the elections to their end.
Each ioctl raises `Errno` with OpenBSD's strerror text on failure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from . import errors
from .election import Contender, elect
from .errors import Errno
from .events import LOG_CRIT, LOG_ERR, LOG_WARNING, SimEvent
from .state import (
    BACKUP,
    CARP,
    CARP_BAL_MODES,
    CARP_MAXNODES,
    ENC,
    ETHER,
    INIT,
    LOOP,
    MASTER,
    PFSYNC,
    Address,
    CarpSoftc,
    Iface,
    Node,
    PfsyncSoftc,
    Vhost,
    WorldState,
)
from .view import carp_running

ZERO_MAC = "00:00:00:00:00:00"
CARP_BAL_IP = 1
_CLONE_NAME = re.compile(r"([a-z]+)([0-9]+)\Z")


@dataclass
class CarpReq:
    """struct carpreq, as SIOCGVH fills it and SIOCSVH reads it."""

    carpdev: str = ""
    state: str = INIT  # carpr_state: the `state` command; INIT (0) means "no change"
    vhids: list[int] = field(default_factory=list)  # in vhost (sorted) order
    advskews: list[int] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    advbase: int = 1
    balancing: int = 0
    key: str = ""
    peer: str | None = None


@dataclass
class PfsyncReq:
    """struct pfsyncreq."""

    syncdev: str = ""
    syncpeer: str | None = None
    maxupd: int = 128
    defer: bool = False


def is_multicast(addr: str | None) -> bool:
    """IN_MULTICAST(); None stands for the default multicast group."""
    if addr is None:
        return True
    first = addr.split(".", 1)[0]
    return first.isdigit() and 224 <= int(first) <= 239


class Kernel:
    """The kernel of every node of one world, for one transaction.

    State changes and demotions are appended to `events` as the kernel would log them.
    """

    def __init__(self, world: WorldState, events: list[SimEvent], now: float) -> None:
        self.world = world
        self.events = events
        self.now = now

    # --- logging ---------------------------------------------------------------------------

    def _log(
        self,
        node: Node,
        level: int,
        text: str,
        *,
        iface: str | None = None,
        vhid: int | None = None,
        old: str | None = None,
        new: str | None = None,
    ) -> None:
        self.world.event_seq += 1
        self.events.append(
            SimEvent(
                seq=self.world.event_seq,
                time=self.now,
                node=node.name,
                level=level,
                text=text,
                logged=node.sysctl["log"] >= level,  # CARP_LOG: carpctl_log >= level
                iface=iface,
                vhid=vhid,
                old=old,
                new=new,
            )
        )

    # --- carp_softc primitives -------------------------------------------------------------

    def set_state(self, node: Node, iface: Iface, vhe: Vhost, state: str) -> None:
        """carp_set_state(): change one vhost's state and log it."""
        old = vhe.state
        if old == state:
            return
        level = LOG_WARNING if INIT in (old, state) else LOG_CRIT
        assert iface.carp is not None
        if len(iface.carp.vhosts) > 1:
            text = f"{iface.name}: state transition (vhid {vhe.vhid}): {old} -> {state}"
        else:
            text = f"{iface.name}: state transition: {old} -> {state}"
        vhe.state = state
        self._log(node, level, text, iface=iface.name, vhid=vhe.vhid, old=old, new=state)

    def set_state_all(self, node: Node, iface: Iface, state: str) -> None:
        assert iface.carp is not None
        for vhe in iface.carp.vhosts:
            self.set_state(node, iface, vhe, state)

    def setrun_all(self, node: Node, iface: Iface) -> None:
        """carp_setrun_all(): INIT -> BACKUP where the interface can run; INIT where not."""
        sc = iface.carp
        assert sc is not None
        if carp_running(node, iface):
            for vhe in sc.vhosts:
                if vhe.vhid > 0 and vhe.state == INIT:
                    self.set_state(node, iface, vhe, BACKUP)
        else:
            self.set_state_all(node, iface, INIT)

    def demote_adj(self, node: Node, iface: Iface, adj: int, reason: str) -> None:
        """carp_group_demote_adj(): add adj to every group of the interface but "all"."""
        if iface.carp is not None:
            iface.carp.demote_cnt = max(0, iface.carp.demote_cnt + adj)
        for group in iface.groups:
            dm = node.group_demote.get(group, 0)
            dm = dm + adj if dm + adj >= 0 else 0
            node.group_demote[group] = dm
            self._log(
                node,
                LOG_ERR,
                f"carp: {iface.name} demoted group {group} by {adj} to {dm} ({reason})",
            )

    def carpdev_state(self, node: Node, iface: Iface) -> None:
        """carp_carpdev_state(): the link hook of the carpdev."""
        sc = iface.carp
        assert sc is not None
        dev = node.get(sc.carpdev) if sc.carpdev is not None else None
        if dev is None:
            return
        if not dev.link_up:
            self.set_state_all(node, iface, INIT)
            if not sc.suppress:
                sc.suppress = True
                self.demote_adj(node, iface, 1, "carpdev")
        elif sc.suppress:
            self.set_state_all(node, iface, INIT)
            sc.suppress = False
            self.setrun_all(node, iface)
            self.demote_adj(node, iface, -1, "carpdev")

    def pfsync_syncdev_state(self, node: Node, iface: Iface) -> None:
        """pfsync_syncdev_state(): the link hook of the syncdev."""
        sc = iface.pfsync
        assert sc is not None
        if not iface.up:
            return
        dev = node.get(sc.syncdev) if sc.syncdev is not None else None
        if dev is None:
            return
        if not dev.link_up:
            if not sc.link_demoted:
                self.demote_adj(node, iface, 1, "pfsync link state down")
                sc.link_demoted = True
        elif sc.link_demoted:
            self.demote_adj(node, iface, -1, "pfsync link state up")
            sc.link_demoted = False

    @staticmethod
    def vhe_enaddr(sc: CarpSoftc) -> str:
        """carp_set_vhe_enaddr() for the first (leader) vhost."""
        vhe = sc.vhosts[0]
        if vhe.vhid != 0 and sc.carpdev is not None:
            first = 1 if sc.balancing == CARP_BAL_IP else 0
            return f"{first:02x}:00:5e:00:01:{vhe.vhid:02x}"
        return ZERO_MAC

    def set_enaddr(self, node: Node, iface: Iface) -> None:
        """carp_set_enaddr(): a new MAC address restarts every vhost from INIT."""
        sc = iface.carp
        assert sc is not None
        want = self.vhe_enaddr(sc)
        cur = iface.lladdr or ZERO_MAC
        if cur[3:14] == want[3:14] or cur == ZERO_MAC:
            cur = want
        if cur != (iface.lladdr or ZERO_MAC):
            iface.lladdr = cur
            self.set_state_all(node, iface, INIT)
            self.setrun_all(node, iface)

    def carpdetach(self, node: Node, iface: Iface) -> None:
        sc = iface.carp
        assert sc is not None
        if sc.demote_cnt:
            self.demote_adj(node, iface, -sc.demote_cnt, "detach")
        sc.suppress = False
        self.set_state_all(node, iface, INIT)
        iface.up = False
        sc.carpdev = None

    # --- ioctls ----------------------------------------------------------------------------

    @staticmethod
    def _suser(node: Node) -> None:
        if node.unprivileged:
            raise Errno(errors.EPERM)

    @staticmethod
    def ifunit(node: Node, name: str) -> Iface:
        iface = node.get(name)
        if iface is None:
            raise Errno(errors.ENXIO)
        return iface

    def siocifcreate(self, node: Node, name: str) -> Iface:
        self._suser(node)
        m = _CLONE_NAME.match(name)
        if m is None or m.group(1) not in ("carp", "pfsync", "lo", "enc"):
            raise Errno(errors.EINVAL)
        if node.get(name) is not None:
            raise Errno(errors.EEXIST)
        cloner, unit = m.group(1), int(m.group(2))
        if cloner == "pfsync" and unit != 0:
            raise Errno(errors.EINVAL)
        index = node.next_index
        node.next_index += 1
        if cloner == "carp":
            iface = Iface(
                name, CARP, index, up=False, priority=15, lladdr=ZERO_MAC,
                groups=["carp"], carp=CarpSoftc(),
            )  # fmt: skip
        elif cloner == "pfsync":
            iface = Iface(name, PFSYNC, index, up=False, groups=["carp", "pfsync"],
                          pfsync=PfsyncSoftc())  # fmt: skip
        elif cloner == "lo":
            iface = Iface(name, LOOP, index, up=False, mtu=32768, groups=["lo"])
        else:
            iface = Iface(name, ENC, index, up=False, mtu=0, groups=["enc"])
        node.interfaces.append(iface)
        return iface

    def siocifdestroy(self, node: Node, name: str) -> None:
        self._suser(node)
        iface = self.ifunit(node, name)
        if iface.kind == ETHER or iface.name in ("lo0", "enc0"):
            raise Errno(errors.EINVAL if iface.kind == ETHER else errors.EPERM)
        if iface.carp is not None:
            self.carpdetach(node, iface)
        if iface.pfsync is not None and iface.pfsync.link_demoted:
            self.demote_adj(node, iface, -1, "pfsync destroy")
        node.interfaces.remove(iface)
        for group in list(node.group_demote):
            if not node.group_exists(group):
                del node.group_demote[group]  # if_delgroup(): the counter goes with the group

    def siocsifflags(self, node: Node, iface: Iface, up: bool) -> None:
        self._suser(node)
        iface.up = up  # ifioctl() sets the flags before it calls the driver
        if iface.carp is not None:
            first = iface.carp.vhosts[0]
            if first.state != INIT and not up:
                self.set_state_all(node, iface, INIT)  # after bowing out (advskew 255)
            elif first.state == INIT and up:
                self.setrun_all(node, iface)

    def siocsifdescr(self, node: Node, iface: Iface, text: str) -> None:
        self._suser(node)
        iface.description = text or None

    def siocaifgroup(self, node: Node, name: str, group: str) -> None:
        self._suser(node)
        iface = self.ifunit(node, name)
        if group in iface.groups:
            raise Errno(errors.EEXIST)
        iface.groups.append(group)
        node.group_demote.setdefault(group, 0)
        if iface.carp is not None and iface.carp.demote_cnt:  # carp_ifgroup_ioctl()
            node.group_demote[group] += iface.carp.demote_cnt

    def siocdifgroup(self, node: Node, name: str, group: str) -> None:
        self._suser(node)
        iface = self.ifunit(node, name)
        if group not in iface.groups:
            raise Errno(errors.ENOENT)
        if iface.carp is not None and iface.carp.demote_cnt:
            dm = node.group_demote.get(group, 0) - iface.carp.demote_cnt
            node.group_demote[group] = max(dm, 0)
        iface.groups.remove(group)
        if not node.group_exists(group):
            node.group_demote.pop(group, None)

    def siocaifaddr(self, node: Node, iface: Iface, addr: Address) -> None:
        """in_ioctl(SIOCAIFADDR); for carp, carp_ioctl(SIOCSIFADDR) and carp_set_addr()."""
        self._suser(node)
        if iface.carp is not None and iface.carp.carpdev is None:
            raise Errno(errors.EINVAL)
        iface.addrs = [a for a in iface.addrs if a.inet6 or a.addr != addr.addr]
        iface.addrs.append(addr)
        iface.up = True
        if iface.carp is not None:
            self.set_state_all(node, iface, INIT)
            self.setrun_all(node, iface)

    def siocdifaddr(self, node: Node, iface: Iface, addr: str | None) -> None:
        """in_ioctl(SIOCDIFADDR): the named IPv4 address, or the first one."""
        self._suser(node)
        found = [a for a in iface.addrs if not a.inet6 and addr in (None, a.addr)]
        if not found:
            raise Errno(errors.EADDRNOTAVAIL)
        iface.addrs.remove(found[0])
        if iface.carp is not None and not iface.addrs:  # carp_addr_updated()
            iface.up = False
            self.set_state_all(node, iface, INIT)

    def siocgvh(self, node: Node, iface: Iface) -> CarpReq:
        sc = iface.carp
        if sc is None:
            raise Errno(errors.ENOTTY)
        return CarpReq(
            carpdev=sc.carpdev or "",
            vhids=[v.vhid for v in sc.vhosts],
            advskews=[v.advskew for v in sc.vhosts],
            states=[v.state for v in sc.vhosts],
            advbase=sc.advbase,
            balancing=sc.balancing,
            key=sc.key if not node.unprivileged else "",
            peer=sc.peer,
        )

    def siocsvh(self, node: Node, iface: Iface, req: CarpReq) -> None:
        """carp_ioctl(SIOCSVH)."""
        sc = iface.carp
        if sc is None:
            raise Errno(errors.ENOTTY)
        self._suser(node)
        dev = None
        if req.carpdev:
            dev = node.get(req.carpdev)
            if dev is None:
                raise Errno(errors.EINVAL)
        sc.peer = None if req.peer is None or req.peer == "224.0.0.18" else req.peer
        if dev is not None and dev.name != sc.carpdev:
            self._set_ifp(node, iface, dev)
        first = sc.vhosts[0]
        if first.state not in (INIT, req.state):
            if req.state == BACKUP:
                self.set_state_all(node, iface, BACKUP)
            elif req.state == MASTER:
                for vhe in sc.vhosts:
                    if vhe.state == BACKUP:
                        self.set_state(node, iface, vhe, MASTER)
        self._vhids_ioctl(node, iface, req)
        if req.advbase > 255:
            raise Errno(errors.EINVAL)
        sc.advbase = req.advbase
        padded = req.advskews + [0] * (CARP_MAXNODES - len(req.advskews))
        cfg = sc.cfg_advskews + [0] * (CARP_MAXNODES - len(sc.cfg_advskews))
        if padded != cfg:
            for i, vhe in enumerate(sc.vhosts):
                vhe.advskew = padded[i]
            sc.cfg_advskews = list(req.advskews)
        if sc.balancing != req.balancing:
            if req.balancing >= len(CARP_BAL_MODES):
                raise Errno(errors.EINVAL)
            sc.balancing = req.balancing
            self.set_enaddr(node, iface)
        sc.key = req.key
        self.setrun_all(node, iface)

    def _set_ifp(self, node: Node, iface: Iface, dev: Iface) -> None:
        """carp_set_ifp()."""
        sc = iface.carp
        assert sc is not None
        if dev.kind not in (ETHER, LOOP, CARP):
            raise Errno(errors.EADDRNOTAVAIL)  # no IFF_MULTICAST
        if dev.kind != ETHER:
            raise Errno(errors.EINVAL)
        mine = {v.vhid for v in sc.vhosts}
        for other in node.interfaces:
            if other is iface or other.carp is None or other.carp.carpdev != dev.name:
                continue
            if any(v.vhid in mine for v in other.carp.vhosts):
                raise Errno(errors.EINVAL)  # carp_check_dup_vhids()
        if sc.carpdev is not None:
            self.carpdetach(node, iface)
        sc.carpdev = dev.name
        if iface.inet4():
            iface.up = True
        self.set_enaddr(node, iface)
        self.carpdev_state(node, iface)

    def _vhids_ioctl(self, node: Node, iface: Iface, req: CarpReq) -> None:
        """carp_vhids_ioctl(): a new list of vhids rebuilds every vhost, all from INIT."""
        sc = iface.carp
        assert sc is not None
        if not req.vhids or req.vhids[0] == 0 or req.vhids == sc.cfg_vhids:
            return
        taken: set[int] = set()
        others = [
            v.vhid
            for o in node.interfaces
            if o is not iface and o.carp is not None and o.carp.carpdev is not None
            and o.carp.carpdev == sc.carpdev
            for v in o.carp.vhosts
        ]  # fmt: skip
        for i, vhid in enumerate(req.vhids):
            if vhid in taken or (sc.carpdev is not None and vhid in others):
                raise Errno(errors.EINVAL)
            taken.add(vhid)
            if req.advskews[i] >= 255:
                raise Errno(errors.EINVAL)
        if len(req.vhids) <= 1:
            req.balancing = 0
        elif req.balancing == 0 and sc.balancing == 0:
            req.balancing = CARP_BAL_IP
        # carp_destroy_vhosts() + carp_new_vhost() in vhid order; the new ones start in INIT
        # without a log line (they are new), which is what the kernel does too.
        pairs = sorted(zip(req.vhids, req.advskews[: len(req.vhids)], strict=True))
        sc.vhosts = [Vhost(vhid, skew) for vhid, skew in pairs]
        sc.cfg_vhids = list(req.vhids)
        sc.cfg_advskews = list(req.advskews)
        self.set_enaddr(node, iface)

    def siocgetpfsync(self, iface: Iface) -> PfsyncReq:
        sc = iface.pfsync
        if sc is None:
            raise Errno(errors.ENOTTY)
        return PfsyncReq(sc.syncdev or "", sc.syncpeer, sc.maxupd, sc.defer)

    def siocsetpfsync(self, node: Node, iface: Iface, req: PfsyncReq) -> None:
        sc = iface.pfsync
        if sc is None:
            raise Errno(errors.ENOTTY)
        self._suser(node)
        if req.maxupd > 255:
            raise Errno(errors.EINVAL)
        if req.syncdev and node.get(req.syncdev) is None:
            raise Errno(errors.EINVAL)
        sc.syncpeer = None if req.syncpeer in (None, "224.0.0.240") else req.syncpeer
        sc.maxupd = req.maxupd
        sc.defer = req.defer
        sc.syncdev = req.syncdev or None

    def siocgifgattr(self, node: Node, group: str) -> int:
        if not node.group_exists(group):
            raise Errno(errors.ENOENT)
        return node.group_demote.get(group, 0)

    def siocsifgattr(self, node: Node, group: str, demote: int) -> None:
        """ifioctl() checks root first, then if_setgroupattribs()."""
        self._suser(node)
        if not node.group_exists(group):
            raise Errno(errors.ENOENT)
        current = node.group_demote.get(group, 0)
        if not 0 <= current + demote <= 0xFF:
            raise Errno(errors.EINVAL)
        node.group_demote[group] = current + demote

    # --- settling --------------------------------------------------------------------------

    def settle(self) -> None:
        """Run the link hooks, then every election, until the world is at rest."""
        for node in self.world.nodes.values():
            for iface in node.interfaces:
                if iface.carp is not None:
                    self.carpdev_state(node, iface)
                elif iface.pfsync is not None:
                    self.pfsync_syncdev_state(node, iface)
            for iface in node.interfaces:
                if iface.carp is not None:
                    self.setrun_all(node, iface)
        self._elect_all()

    def _elect_all(self) -> None:
        order = list(self.world.nodes.values())
        domains: dict[tuple[str, int], list[tuple[Node, Iface, Vhost]]] = {}
        for node in order:
            for iface in node.interfaces:
                sc = iface.carp
                if sc is None or sc.carpdev is None:
                    continue
                for vhe in sc.vhosts:
                    if vhe.state != INIT:
                        domains.setdefault((sc.carpdev, vhe.vhid), []).append((node, iface, vhe))
        for members in domains.values():
            if len(members) == 1:
                node, iface, vhe = members[0]
                if vhe.state == BACKUP:
                    self.set_state(node, iface, vhe, MASTER)  # nobody else: master down
                continue
            self._elect(members)

    def _elect(self, members: list[tuple[Node, Iface, Vhost]]) -> None:
        contenders = [
            Contender(
                state=vhe.state,
                advbase=iface.carp.advbase,
                advskew=vhe.advskew,
                demote=node.carp_demote_count(iface),
                preempt=node.sysctl["preempt"] != 0,
            )
            for node, iface, vhe in members
            if iface.carp is not None
        ]

        def hears(r: int, s: int) -> bool:
            rnode, riface, _ = members[r]
            snode, siface, _ = members[s]
            rsc, ssc = riface.carp, siface.carp
            assert rsc is not None
            assert ssc is not None
            if rnode is snode or rnode.sysctl["allow"] == 0:
                return False
            # The HMAC covers the password, the vhid and the sorted IPv4 addresses.
            if rsc.key != ssc.key or sorted(riface.inet4()) != sorted(siface.inet4()):
                return False
            if is_multicast(ssc.peer):
                return is_multicast(rsc.peer)
            dev = rnode.get(rsc.carpdev) if rsc.carpdev is not None else None
            return not is_multicast(rsc.peer) and dev is not None and ssc.peer in dev.inet4()

        for i, old, new in elect(contenders, hears):
            node, iface, vhe = members[i]
            assert vhe.state == old
            self.set_state(node, iface, vhe, new)
