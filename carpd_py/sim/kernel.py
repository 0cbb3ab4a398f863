"""The simulated kernel: the ioctls ifconfig uses, the link hooks, and the timers.

Follows sys/netinet/ip_carp.c r1.370 (carp_ioctl, carp_set_ifp, carp_vhids_ioctl,
carp_setrun, carp_send_ad, carp_master_down, carp_proto_input_c, carp_set_state,
carp_group_demote_adj, carp_carpdev_state), sys/net/if_pfsync.c r1.332 (pfsync_up,
pfsync_down, pfsync_set_ioc, pfsync_syncif_link, pfsync_bulk_req_evt) and sys/net/if.c
(ifioctl, if_setgroupattribs, if_getgroupattribs). Each ioctl raises `Errno` with OpenBSD's
strerror text on failure.

Time passes as on the wire. A MASTER sends an advertisement every advbase + advskew/256 s
(`Vhost.ad_at`), carrying its advbase, advskew and demote count as they are when it leaves; a
BACKUP that hears one decides with carp_proto_input_c()'s rules (`election.react`) and restarts
its master-down timer (`Vhost.md_at`, 3 x advbase + advskew/256 s), which makes it MASTER
(carp_master_down()) when it runs out. `advance()` runs every timer due up to "now" in order;
a world where no timer can change anything is at rest and is moved to "now" in one step.
`settle()` runs the link hooks after a change and starts vhosts that can run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from . import errors
from .election import Contender, react
from .errors import Errno
from .events import (
    ARRIVAL,
    DEMOTE,
    DEPARTURE,
    LINK,
    LINK_STATE_DOWN,
    LINK_STATE_FULL_DUPLEX,
    LINK_STATE_INVALID,
    LINK_STATE_NAMES,
    LINK_STATE_UNKNOWN,
    LINK_STATE_UP,
    LOG_CRIT,
    LOG_ERR,
    LOG_INFO,
    LOG_WARNING,
    SimEvent,
)
from .events import (
    CARP as EV_CARP,
)
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
from .store import Store
from .view import carp_running, iface_flags

ZERO_MAC = "00:00:00:00:00:00"
CARP_BAL_IP = 1
_CLONE_NAME = re.compile(r"([a-z]+)([0-9]+)\Z")

# if_pfsync.c r1.332: the bulk request waits 30 s for the syncdev's link, then 2 s for each of
# PFSYNC_MAX_BULKTRIES requests. How long the peer takes to send its states is the model's
# choice (a few hundred states on a LAN): BULK_ANSWER seconds after the request.
BREQ_LINK_WAIT = 30.0
BREQ_RETRY = 2.0
PFSYNC_MAX_BULKTRIES = 12
BULK_ANSWER = 0.1
MAX_STEPS = 1_000_000  # timers run by one advance(): a guard against a modelling loop
MAX_DEPTH = 16  # advertisements answered by advertisements within one instant


def ad_interval(advbase: int, advskew: int) -> float:
    """carp_setrun(MASTER) / carp_send_ad(): the time to the next advertisement."""
    if advbase == 0 and advskew == 0:
        return 1 / 256
    return advbase + advskew / 256


def md_interval(advbase: int, advskew: int) -> float:
    """carp_setrun(BACKUP): the master-down timer."""
    if advbase == 0 and advskew == 0:
        return 3 / 256
    if advbase == 0:
        return 3 * advskew / 256
    return 3 * advbase + advskew / 256


Member = tuple[Node, Iface, Vhost]


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

    def __init__(self, world: WorldState, events: list[SimEvent], wall: float) -> None:
        """A kernel over `world` at the wall-clock time `wall` (see `WorldState.sim_time`).

        `now` starts where the world was left; `advance()` brings it to `target`.
        """
        self.world = world
        self.events = events
        self.now = world.now
        self.target = world.sim_time(wall)
        self._links = self._link_snapshot()
        self._depth = 0

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
        kind: str = EV_CARP,
        index: int | None = None,
        flags: int | None = None,
        link_state: int | None = None,
        group: str | None = None,
        count: int | None = None,
    ) -> None:
        self.world.event_seq += 1
        self.events.append(
            SimEvent(
                seq=self.world.event_seq,
                time=self.now,
                node=node.name,
                level=level,
                text=text,
                logged=bool(text) and node.sysctl["log"] >= level,  # CARP_LOG
                iface=iface,
                vhid=vhid,
                old=old,
                new=new,
                kind=kind,
                index=index,
                flags=flags,
                link_state=link_state,
                group=group,
                count=count,
            )
        )

    # --- link state messages ---------------------------------------------------------------

    @staticmethod
    def link_state(iface: Iface) -> int:
        """if_link_state: carp_set_state() sets it from the leader vhost; em from its PHY."""
        if iface.kind == ETHER:
            return LINK_STATE_FULL_DUPLEX if iface.up and iface.carrier else LINK_STATE_DOWN
        if iface.carp is not None:
            leader = iface.carp.vhosts[0].state
            if leader == MASTER:
                return LINK_STATE_UP
            return LINK_STATE_DOWN if leader == BACKUP else LINK_STATE_INVALID
        return LINK_STATE_UNKNOWN

    def _link_snapshot(self) -> dict[tuple[str, str], tuple[int, int, int]]:
        return {
            (node.name, i.name): (i.index, iface_flags(node, i), self.link_state(i))
            for node in self.world.nodes.values()
            for i in node.interfaces
        }

    def note_links(self) -> None:
        """Events for what changed since the last look: RTM_IFANNOUNCE and RTM_IFINFO."""
        new = self._link_snapshot()
        old = self._links
        if new == old:
            return
        for key in old.keys() - new.keys():
            node = self.world.nodes.get(key[0])
            if node is not None:
                self._log(node, LOG_INFO, "", iface=key[1], kind=DEPARTURE, index=old[key][0])
        for key, (index, flags, ls) in new.items():
            node = self.world.nodes[key[0]]
            if key not in old:
                self._log(node, LOG_INFO, "", iface=key[1], kind=ARRIVAL, index=index)
            if old.get(key, (None, None, None))[1:] != (flags, ls):
                self._log(
                    node, LOG_INFO, "", iface=key[1], kind=LINK, index=index, flags=flags,
                    link_state=ls, new=LINK_STATE_NAMES.get(ls, str(ls)),
                )  # fmt: skip
        self._links = new

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
        if state != MASTER:
            vhe.ad_at = None
        if state != BACKUP:
            vhe.md_at = None
        self._log(node, level, text, iface=iface.name, vhid=vhe.vhid, old=old, new=state)

    def set_state_all(self, node: Node, iface: Iface, state: str) -> None:
        assert iface.carp is not None
        for vhe in iface.carp.vhosts:
            self.set_state(node, iface, vhe, state)

    def setrun(self, node: Node, iface: Iface, vhe: Vhost) -> None:
        """carp_setrun(): (re)start the vhost's timer for its state.

        INIT becomes BACKUP; a BACKUP's master-down timer and a MASTER's advertisement timer
        start again from now (timeout_add() moves a pending timeout).
        """
        sc = iface.carp
        assert sc is not None
        if sc.carpdev is None:
            self.set_state_all(node, iface, INIT)
            return
        if vhe.vhid == 0 or not carp_running(node, iface):
            return  # IFF_RUNNING cleared; the state stays
        if vhe.state == INIT:
            self.set_state(node, iface, vhe, BACKUP)
        if vhe.state == BACKUP:
            vhe.ad_at = None
            vhe.md_at = self.now + md_interval(sc.advbase, vhe.advskew)
        elif vhe.state == MASTER:
            vhe.ad_at = self.now + ad_interval(sc.advbase, vhe.advskew)

    def setrun_all(self, node: Node, iface: Iface) -> None:
        """carp_setrun_all(); an interface that cannot run has its vhosts in INIT."""
        sc = iface.carp
        assert sc is not None
        if carp_running(node, iface):
            for vhe in sc.vhosts:
                self.setrun(node, iface, vhe)
        else:
            self.set_state_all(node, iface, INIT)

    def demote_adj(self, node: Node, iface: Iface, adj: int, reason: str) -> None:
        """carp_group_demote_adj(): add adj to every group of the interface but "all".

        A group that goes from 0 to 1 makes every master send an advertisement at once
        (carp_send_ad_all()), so that a backup takes over without waiting.
        """
        if iface.carp is not None:
            iface.carp.demote_cnt = max(0, iface.carp.demote_cnt + adj)
        need_ad = False
        for group in iface.groups:
            dm = node.group_demote.get(group, 0)
            dm = dm + adj if dm + adj >= 0 else 0
            node.group_demote[group] = dm
            need_ad = need_ad or (adj > 0 and dm == 1)
            self._log(
                node,
                LOG_ERR,
                f"carp: {iface.name} demoted group {group} by {adj} to {dm} ({reason})",
                iface=iface.name,
                kind=DEMOTE,
                group=group,
                count=dm,
            )
        if need_ad:
            self.send_ad_all(node)

    # --- advertisements and timers ---------------------------------------------------------

    def _contender(self, node: Node, iface: Iface, vhe: Vhost) -> Contender:
        assert iface.carp is not None
        return Contender(
            state=vhe.state,
            advbase=iface.carp.advbase,
            advskew=vhe.advskew,
            demote=node.carp_demote_count(iface),
            preempt=node.sysctl["preempt"] != 0,
        )

    def hears(self, rnode: Node, riface: Iface, snode: Node, siface: Iface) -> bool:
        """Whether `riface` receives and accepts `siface`'s advertisements (carp_proto_input).

        Same segment (carpdev name) and vhid are the caller's; here: another node,
        net.inet.carp.allow, the HMAC (password, vhid, sorted IPv4 addresses), and where the
        advertisements go (multicast, or unicast to an address on the receiver's carpdev).
        """
        rsc, ssc = riface.carp, siface.carp
        assert rsc is not None
        assert ssc is not None
        if rnode is snode or rnode.sysctl["allow"] == 0:
            return False
        if rsc.key != ssc.key or sorted(riface.inet4()) != sorted(siface.inet4()):
            return False
        if is_multicast(ssc.peer):
            return is_multicast(rsc.peer)
        dev = rnode.get(rsc.carpdev) if rsc.carpdev is not None else None
        return not is_multicast(rsc.peer) and dev is not None and ssc.peer in dev.inet4()

    def receivers(self, node: Node, iface: Iface, vhe: Vhost) -> list[Member]:
        """Who gets an advertisement of this vhost: same carpdev name and vhid, UP|RUNNING,
        not INIT, and accepting it."""
        sc = iface.carp
        assert sc is not None
        out: list[Member] = []
        for other in self.world.nodes.values():
            if other is node:
                continue
            for oif in other.interfaces:
                osc = oif.carp
                if osc is None or osc.carpdev != sc.carpdev or not carp_running(other, oif):
                    continue
                for ovhe in osc.vhosts:
                    if ovhe.vhid != vhe.vhid or ovhe.state == INIT:
                        continue
                    if self.hears(other, oif, node, iface):
                        out.append((other, oif, ovhe))
        return out

    def send_ad(self, node: Node, iface: Iface, vhe: Vhost, *, bow_out: bool = False) -> None:
        """carp_send_ad(): advertise advbase, advskew and the demote count as they are now.

        Bowing out (the interface going down) advertises 255/255 and schedules nothing.
        """
        sc = iface.carp
        assert sc is not None
        if sc.carpdev is None:
            return
        sender = self._contender(node, iface, vhe)
        if bow_out:
            sender.advbase = sender.advskew = 255
        else:
            vhe.ad_at = self.now + ad_interval(sc.advbase, vhe.advskew)
        if self._depth >= MAX_DEPTH:
            return
        self._depth += 1
        try:
            for rnode, riface, rvhe in self.receivers(node, iface, vhe):
                self.proto_input(rnode, riface, rvhe, sender)
        finally:
            self._depth -= 1

    def send_ad_all(self, node: Node) -> None:
        """carp_send_ad_all(): every MASTER vhost of every running carp interface."""
        for iface in node.interfaces:
            if iface.carp is not None and carp_running(node, iface):
                for vhe in iface.carp.vhosts:
                    if vhe.state == MASTER:
                        self.send_ad(node, iface, vhe)

    def proto_input(self, node: Node, iface: Iface, vhe: Vhost, sender: Contender) -> None:
        """carp_proto_input_c(): one advertisement arrives at a receiver."""
        new = react(self._contender(node, iface, vhe), sender)
        if vhe.state == MASTER:
            if new == BACKUP:
                self.set_state(node, iface, vhe, BACKUP)
                self.setrun(node, iface, vhe)
        elif vhe.state == BACKUP:
            if new == MASTER:
                self.master_down(node, iface, vhe)
            else:
                self.setrun(node, iface, vhe)  # reset the master-down timer

    def master_down(self, node: Node, iface: Iface, vhe: Vhost) -> None:
        """carp_master_down(): a BACKUP becomes MASTER and advertises at once."""
        if vhe.state != BACKUP:
            return
        self.set_state(node, iface, vhe, MASTER)
        self.send_ad(node, iface, vhe)
        if vhe.state == MASTER:
            self.setrun(node, iface, vhe)

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

    # --- pfsync (if_pfsync.c r1.332, OpenBSD 7.4 and later) ------------------------------

    def pfsync_up(self, node: Node, iface: Iface) -> None:
        """pfsync_up(): RUNNING, +1 until the syncdev has link, +32 until the bulk update."""
        sc = iface.pfsync
        assert sc is not None
        dev = node.get(sc.syncdev) if sc.syncdev is not None else None
        if dev is None:
            raise Errno(errors.ENXIO)
        sc.sync_if_down = True
        self.demote_adj(node, iface, 1, "pfsync up")
        iface.up = True
        self.bulk_req_evt(node, iface, "up")
        self.syncif_link(node, iface)

    def pfsync_down(self, node: Node, iface: Iface) -> None:
        """pfsync_down(): not RUNNING; gives back the demotions pfsync holds."""
        sc = iface.pfsync
        assert sc is not None
        iface.up = False
        if sc.sync_if_down:
            self.demote_adj(node, iface, -1, "pfsync down")
            sc.sync_if_down = False
        self.bulk_req_evt(node, iface, "down")

    def syncif_link(self, node: Node, iface: Iface) -> None:
        """pfsync_syncif_link(): the syncdev's link hook, while pfsync runs.

        7.4+ keeps pfsync0 UP,RUNNING: the link only moves the demote counter ("pfsync link").
        """
        sc = iface.pfsync
        assert sc is not None
        if not iface.up:
            return
        dev = node.get(sc.syncdev) if sc.syncdev is not None else None
        down = dev is None or not dev.link_up
        if not down:
            self.bulk_req_evt(node, iface, "link")
        if sc.sync_if_down != down:
            self.demote_adj(node, iface, 1 if down else -1, "pfsync link")
        sc.sync_if_down = down

    def _bulk_peer(self, node: Node, iface: Iface) -> bool:
        """Whether a peer would answer a bulk request now: another node's pfsync running on
        a syncdev of the same name, both links up."""
        sc = iface.pfsync
        assert sc is not None
        dev = node.get(sc.syncdev) if sc.syncdev is not None else None
        if dev is None or not dev.link_up:
            return False
        for other in self.world.nodes.values():
            if other is node:
                continue
            for oif in other.interfaces:
                osc = oif.pfsync
                if osc is None or not oif.up or osc.syncdev != sc.syncdev:
                    continue
                odev = other.get(osc.syncdev) if osc.syncdev is not None else None
                if odev is not None and odev.link_up:
                    return True
        return False

    def _bulk_req_send(self, node: Node, iface: Iface) -> None:
        """pfsync_bulk_req_send(): the peer, if there is one, answers BULK_ANSWER s later."""
        sc = iface.pfsync
        assert sc is not None
        if sc.bus_at is None and self._bulk_peer(node, iface):
            sc.bus_at = self.now + BULK_ANSWER

    def _bulk_req_done(self, node: Node, iface: Iface) -> None:
        """pfsync_bulk_req_nstate_done()."""
        sc = iface.pfsync
        assert sc is not None
        sc.breq, sc.breq_at, sc.bus_at = "done", None, None
        if sc.breq_demoted:
            sc.breq_demoted = False
            self.demote_adj(node, iface, -32, "pfsync done")

    def bulk_req_evt(self, node: Node, iface: Iface, evt: str) -> None:
        """pfsync_bulk_req_evt(): events up, link, tmo, bus (the peer's bulk update), down."""
        sc = iface.pfsync
        assert sc is not None
        if evt == "down":
            sc.breq_tries, sc.breq, sc.breq_at, sc.bus_at = 0, "none", None, None
            if sc.breq_demoted:
                sc.breq_demoted = False
                self.demote_adj(node, iface, -32, "pfsync down")
            return
        state = sc.breq
        if state == "none" and evt == "up":
            sc.breq_demoted = True
            self.demote_adj(node, iface, 32, "pfsync start")
            sc.breq, sc.breq_at = "start", self.now + BREQ_LINK_WAIT
        elif state == "start":
            if evt == "link":
                self._bulk_req_send(node, iface)
                sc.breq, sc.breq_at = "sent", self.now + BREQ_RETRY
            elif evt in ("tmo", "bus"):
                self._bulk_req_done(node, iface)
        elif state == "sent":
            if evt == "bus":
                self._bulk_req_done(node, iface)
            elif evt == "tmo":
                sc.breq_tries += 1
                if sc.breq_tries < PFSYNC_MAX_BULKTRIES:
                    self._bulk_req_send(node, iface)
                    sc.breq_at = self.now + BREQ_RETRY
                else:
                    self._bulk_req_done(node, iface)
        if evt == "bus":
            sc.bus_at = None

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
            raise Errno(errors.ENXIO)  # pfsync_clone_create()
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
        if iface.pfsync is not None and iface.up:
            self.pfsync_down(node, iface)  # pfsync_clone_destroy()
        node.interfaces.remove(iface)
        for group in list(node.group_demote):
            if not node.group_exists(group):
                del node.group_demote[group]  # if_delgroup(): the counter goes with the group

    def siocsifflags(self, node: Node, iface: Iface, up: bool) -> None:
        """ifioctl(SIOCSIFFLAGS): the flags, then the driver; a driver error undoes them."""
        self._suser(node)
        if iface.pfsync is not None:  # pfsync_ioctl(): up runs pfsync_up(), down pfsync_down()
            if up and not iface.up:
                self.pfsync_up(node, iface)
            elif not up and iface.up:
                self.pfsync_down(node, iface)
            return
        iface.up = up
        if iface.carp is not None:
            first = iface.carp.vhosts[0]
            if first.state != INIT and not up:
                for vhe in iface.carp.vhosts:  # bow out: advertise 255/255 before leaving
                    if vhe.state == MASTER:
                        self.send_ad(node, iface, vhe, bow_out=True)
                self.set_state_all(node, iface, INIT)
            elif first.state == INIT and up:
                self.setrun_all(node, iface)

    def siocsifdescr(self, node: Node, iface: Iface, text: str) -> None:
        self._suser(node)
        iface.description = text or None

    def siocaifgroup(self, node: Node, name: str, group: str) -> None:
        self._suser(node)
        iface = self.ifunit(node, name)
        if group in iface.groups:
            raise Errno(errors.EEXIST)  # ifconfig's setifgroup() ignores it
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
                self.setrun_all(node, iface)
            elif req.state == MASTER:
                for vhe in sc.vhosts:
                    self.master_down(node, iface, vhe)
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
        """pfsync_set_ioc(): ENXIO for a syncdev that does not exist; EBUSY for a new
        syncdev or syncpeer while pfsync runs."""
        sc = iface.pfsync
        if sc is None:
            raise Errno(errors.ENOTTY)
        self._suser(node)
        if req.maxupd > 255:
            raise Errno(errors.EINVAL)
        wantdown = True
        if req.syncdev:
            if node.get(req.syncdev) is None:
                raise Errno(errors.ENXIO)
            wantdown = req.syncdev != sc.syncdev
        syncpeer = None if req.syncpeer in (None, "224.0.0.240") else req.syncpeer
        if syncpeer != sc.syncpeer:
            wantdown = True
        if wantdown and iface.up:
            raise Errno(errors.EBUSY)
        sc.syncpeer = syncpeer
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
        self._log(node, LOG_INFO, "", kind=DEMOTE, group=group, count=current + demote)
        if demote > 0:  # carp_ifgattr_ioctl(): the members' masters advertise at once
            for iface in node.members(group):
                if iface.carp is not None and carp_running(node, iface):
                    for vhe in iface.carp.vhosts:
                        if vhe.state == MASTER:
                            self.send_ad(node, iface, vhe)

    # --- settling and time --------------------------------------------------------------

    def boot(self) -> None:
        """/etc/netstart: pfsync0 comes up (pfsync_up()), then every carp interface starts."""
        starting = [
            (node, iface)
            for node in self.world.nodes.values()
            for iface in node.interfaces
            if iface.pfsync is not None and iface.up and iface.pfsync.breq == "none"
        ]
        for _, iface in starting:
            iface.up = False
        for node, iface in starting:
            self.pfsync_up(node, iface)
        self.settle()

    def settle(self) -> None:
        """After a change: the link hooks (on edges), then start what can run, stop what
        cannot. Running timers are left alone: time settles the rest (`advance`)."""
        for node in self.world.nodes.values():
            for iface in node.interfaces:
                if iface.carp is not None:
                    self.carpdev_state(node, iface)
                elif iface.pfsync is not None:
                    self.syncif_link(node, iface)
            for iface in node.interfaces:
                sc = iface.carp
                if sc is None:
                    continue
                if not carp_running(node, iface):
                    self.set_state_all(node, iface, INIT)
                    continue
                for vhe in sc.vhosts:
                    if vhe.state == INIT:
                        self.setrun(node, iface, vhe)

    def _timers(self) -> Iterator[tuple[float, Callable[[], None]]]:
        """Every pending timer, in node, interface and vhost order."""
        for node in self.world.nodes.values():
            for iface in node.interfaces:
                sc = iface.carp
                if sc is not None:
                    for vhe in sc.vhosts:
                        if vhe.ad_at is not None:
                            yield vhe.ad_at, self._fire_ad(node, iface, vhe)
                        if vhe.md_at is not None:
                            yield vhe.md_at, self._fire_md(node, iface, vhe)
                ps = iface.pfsync
                if ps is not None:
                    if ps.bus_at is not None:
                        yield ps.bus_at, self._fire_breq(node, iface, "bus")
                    if ps.breq_at is not None:
                        yield ps.breq_at, self._fire_breq(node, iface, "tmo")

    def _fire_ad(self, node: Node, iface: Iface, vhe: Vhost) -> Callable[[], None]:
        def fire() -> None:
            vhe.ad_at = None
            if vhe.state == MASTER and carp_running(node, iface):
                self.send_ad(node, iface, vhe)

        return fire

    def _fire_md(self, node: Node, iface: Iface, vhe: Vhost) -> Callable[[], None]:
        def fire() -> None:
            vhe.md_at = None
            self.master_down(node, iface, vhe)

        return fire

    def _fire_breq(self, node: Node, iface: Iface, evt: str) -> Callable[[], None]:
        def fire() -> None:
            sc = iface.pfsync
            assert sc is not None
            if evt == "bus":
                sc.bus_at = None
            else:
                sc.breq_at = None
            self.bulk_req_evt(node, iface, evt)

        return fire

    def next_timer(self) -> tuple[float, Callable[[], None]] | None:
        best: tuple[float, Callable[[], None]] | None = None
        for when, fire in self._timers():
            if best is None or when < best[0]:
                best = (when, fire)
        return best

    def _domains(self) -> list[list[Member]]:
        """The vhosts that can advertise or listen, by segment (carpdev name) and vhid."""
        domains: dict[tuple[str, int], list[Member]] = {}
        for node in self.world.nodes.values():
            for iface in node.interfaces:
                sc = iface.carp
                if sc is None or sc.carpdev is None or not carp_running(node, iface):
                    continue
                for vhe in sc.vhosts:
                    if vhe.state != INIT:
                        domains.setdefault((sc.carpdev, vhe.vhid), []).append((node, iface, vhe))
        return list(domains.values())

    def at_rest(self) -> bool:
        """Whether no timer can change anything until the next change from outside.

        Every advertisement heard changes nothing (`react` says so), every BACKUP hears a
        MASTER that advertises before its master-down timer runs out and more often than it
        lasts, and pfsync waits for nothing.
        """
        for node in self.world.nodes.values():
            for iface in node.interfaces:
                ps = iface.pfsync
                if ps is not None and (ps.breq_at is not None or ps.bus_at is not None):
                    return False
        for members in self._domains():
            for rnode, riface, rvhe in members:
                heard = [
                    (snode, siface, svhe)
                    for snode, siface, svhe in members
                    if svhe.state == MASTER and self.hears(rnode, riface, snode, siface)
                ]
                mine = self._contender(rnode, riface, rvhe)
                for snode, siface, svhe in heard:
                    if react(mine, self._contender(snode, siface, svhe)) is not None:
                        return False
                if rvhe.state == BACKUP and rvhe.md_at is not None:
                    assert riface.carp is not None
                    limit = md_interval(riface.carp.advbase, rvhe.advskew)
                    if not any(
                        svhe.ad_at is not None
                        and svhe.ad_at < rvhe.md_at
                        and siface.carp is not None
                        and ad_interval(siface.carp.advbase, svhe.advskew) < limit
                        for _, siface, svhe in heard
                    ):
                        return False
        return True

    def _fast_forward(self, target: float) -> None:
        """At rest: move every timer to `target` as if each advertisement had been sent."""
        sent: dict[int, float] = {}
        for members in self._domains():
            for _, iface, vhe in members:
                if vhe.state == MASTER and vhe.ad_at is not None and vhe.ad_at <= target:
                    assert iface.carp is not None
                    period = ad_interval(iface.carp.advbase, vhe.advskew)
                    k = math.floor((target - vhe.ad_at) / period) + 1
                    sent[id(vhe)] = vhe.ad_at + (k - 1) * period
                    vhe.ad_at += k * period
            for rnode, riface, rvhe in members:
                if rvhe.state != BACKUP:
                    continue
                last = [
                    sent[id(svhe)]
                    for snode, siface, svhe in members
                    if id(svhe) in sent and self.hears(rnode, riface, snode, siface)
                ]
                if last:
                    assert riface.carp is not None
                    rvhe.md_at = max(last) + md_interval(riface.carp.advbase, rvhe.advskew)

    def advance(self, until: float | None = None) -> None:
        """Run every timer due up to `until` (default: `target`, "now") in time order."""
        target = self.target if until is None else until
        for _ in range(MAX_STEPS):
            if self.at_rest():
                self._fast_forward(target)
                break
            nxt = self.next_timer()
            if nxt is None or nxt[0] > target:
                break
            self.now = max(self.now, nxt[0])
            logged = len(self.events)
            nxt[1]()
            if len(self.events) != logged:  # a timer that changed nothing changed no link
                self.note_links()
        self.now = max(self.now, target)
        self.world.now = self.now

    def finish(self) -> None:
        """The end of a transaction: link events, and when the world next needs a look."""
        self.note_links()
        if self.at_rest():
            self.world.due = None
        else:
            nxt = self.next_timer()
            self.world.due = None if nxt is None else nxt[0]


@contextmanager
def transaction(store: Store, wall: float) -> Iterator[Kernel]:
    """The world under its lock, advanced to `wall`; written back with its events after."""
    with store.transaction() as (state, events):
        kernel = Kernel(state, events, wall)
        kernel.advance()
        try:
            yield kernel
        finally:
            kernel.finish()
