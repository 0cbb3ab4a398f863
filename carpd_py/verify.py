"""The handbook's verification and troubleshooting checks, over the reports of the two nodes.

Pure. `build_report` turns what one node read (its HostView, pfctl and relayctl output,
relayd.conf) into a `NodeReport`: a small JSON-able document that a node can send its peer.
`verify(local, peer, config)` runs the checks over one or two reports and returns the
`carpctl verify --json` document:

    {"result": "ok" | "warning" | "failure",
     "checks": [{"check": NAME, "result": ..., "nodes": {NODE: what was seen}, "fix": "..."}]}

A check that cannot run (pfctl missing, no peer report) is a warning, never an ok.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import Config
from .model import HostView, Interface
from .pfparse import PfError, parse_ifaces, parse_info, parse_rules, rules_digest, verdict
from .relayparse import RelaydError, parse_listen, parse_summary

OK, WARNING, FAILURE = "ok", "warning", "failure"
_RANK = {OK: 0, WARNING: 1, FAILURE: 2}
NO_PEER = "no peer report"
NO_PEER_FIX = (
    "run carpd-py on both nodes: the peer's report comes from the running daemon (the checks "
    "of this node alone passed)"
)
CHECKS = ("one_master", "same_vhids", "preempt", "pfsync", "pf_rules", "rules_match", "states",
          "demote_stuck", "relayd")  # fmt: skip
REPORT_VERSION = 1
STATES_SLACK = 10  # state counts this close are close, whatever the tolerance says

FIXES: Mapping[str, str] = {
    "one_master": "MASTER/MASTER: check for a VHID clash, a pass rule missing on one side or "
    "an isolated broadcast domain; look at `ifconfig carpX` and fix the VHID or the password",
    "same_vhids": "give each carp interface the same vhid and advbase on both nodes "
    "(/etc/hostname.carpN), then `sh /etc/netstart carpN`",
    "preempt": "set `sysctl net.inet.carp.preempt=1 net.inet.carp.log=2` (and "
    "net.inet.carp.allow=1) on both nodes, and in /etc/sysctl.conf",
    "pfsync": "states not replicated: make sure pfsync0 is up with the right syncdev "
    "(`ifconfig pfsync0`), its SYNC link has carrier, and both nodes share the SYNC subnet",
    "pf_rules": "enable pf (`pfctl -e`); pass `proto carp` on the carp members and "
    "`proto pfsync` only on the SYNC interface, `set skip on pfsync0`; reload with "
    "`pfctl -f /etc/pf.conf` and check with `pfctl -sr`",
    "rules_match": "failover works but connections drop: states are replicated, rules are "
    "not; load the same /etc/pf.conf on both nodes (`pfctl -f /etc/pf.conf`), NAT included",
    "states": "confirm the states are replicated (`pfctl -vvss` on both nodes, "
    "`tcpdump -n -e -ttt -i pfsync0`): pfsync0 up with the right syncdev, pf enabled, "
    "proto pfsync passed on the SYNC interface",
    "demote_stuck": "demote counter stuck high: read `ifconfig -g carp` and "
    "`sysctl net.inet.carp`, find and clear the cause (e.g. the SYNC link), then set the "
    "counter back (`ifconfig -g carp -carpdemote N`) and advskew to its normal value",
    "relayd": "relayd not serving after failover: run relayd on both nodes "
    "(`rcctl enable relayd; rcctl start relayd`), listening on a carp VIP, with health checks "
    "that match the service; see /var/log/relayd and `relayctl show relays`",
}


@dataclass(frozen=True)
class CarpEntry:
    interface: str
    vhid: int
    state: str
    advbase: int
    advskew: int
    carpdev: str | None


@dataclass(frozen=True)
class RelayEntry:
    name: str
    listen: tuple[str, ...]  # from relayd.conf; () if unknown
    up: int
    hosts: int


@dataclass(frozen=True)
class NodeReport:
    """What one node saw, for the pair checks; JSON-able (`to_json`/`from_json`) so that the
    two daemons can exchange it."""

    node: str
    carp: tuple[CarpEntry, ...] = ()
    vips: tuple[str, ...] = ()  # the carp interfaces' addresses
    sysctl: Mapping[str, int] = field(default_factory=dict)
    demote: int | None = None  # the carp group's demote counter
    our_share: int | None = None  # carpd-py's share of it; None: unknown (daemon not running)
    demote_reasons: tuple[str, ...] = ()  # what the kernel demotes for: links without carrier
    pfsync: Mapping[str, Any] | None = None  # interface, up, syncdev, syncdev_status, subnet
    pf_enabled: bool | None = None
    pf_states: int | None = None
    pf_digest: str | None = None
    pf_rules: int | None = None
    pf_problems: tuple[str, ...] = ()  # the carp/pfsync pass rules missing or blocked
    pf_notes: tuple[str, ...] = ()  # what is not as the handbook has it, but works
    relayd_running: bool | None = None  # None: relayctl could not run at all
    relays: tuple[RelayEntry, ...] = ()
    errors: Mapping[str, str] = field(default_factory=dict)  # what could not be read, and why
    version: int = REPORT_VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> NodeReport:
        """The report in `data`; ValueError, naming the field, for anything that is not one
        (it may come from the network: every field's type is checked; unknown fields, from a
        newer peer, are ignored)."""
        if not isinstance(data, Mapping):
            raise ValueError("not a node report: not an object")  # noqa: TRY004 (a ValueError
            # for every bad input, as the caller expects)
        d: dict[str, Any] = {}
        for key, value in data.items():
            if key not in _SHAPE:
                continue  # a field a newer peer sends: the message is extensible
            if not _SHAPE[key](value):
                raise ValueError(f"not a node report: bad {key!r}")
            d[key] = value
        if not d.get("node"):
            raise ValueError("not a node report: no node name")
        d["carp"] = tuple(CarpEntry(**c) for c in d.get("carp", ()))
        d["relays"] = tuple(
            RelayEntry(r["name"], tuple(r["listen"]), r["up"], r["hosts"])
            for r in d.get("relays", ())
        )
        for key in ("vips", "demote_reasons", "pf_problems", "pf_notes"):
            d[key] = tuple(d.get(key, ()))
        return cls(**d)


def _int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _opt(check: Any) -> Any:
    return lambda v: v is None or check(v)


def _str(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= 4096


def _strs(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and len(v) <= 4096 and all(_str(x) for x in v)


def _record(shape: Mapping[str, Any]) -> Any:
    def check(v: Any) -> bool:
        return (isinstance(v, Mapping) and set(v) == set(shape)
                and all(shape[k](v[k]) for k in shape))  # fmt: skip

    return check


def _list_of(check: Any) -> Any:
    return lambda v: isinstance(v, (list, tuple)) and len(v) <= 4096 and all(map(check, v))


def _bool(v: Any) -> bool:
    return isinstance(v, bool)


def _str_map(value: Any) -> Any:
    return lambda v: isinstance(v, Mapping) and all(_str(k) and value(x) for k, x in v.items())


_CARP = _record({"interface": _str, "vhid": _int, "state": _str, "advbase": _int,
                 "advskew": _int, "carpdev": _opt(_str)})  # fmt: skip
_RELAY = _record({"name": _str, "listen": _strs, "up": _int, "hosts": _int})
_PFSYNC = _record({"interface": _str, "up": _bool, "syncdev": _opt(_str),
                   "syncdev_status": _opt(_str), "subnet": _opt(_str)})  # fmt: skip
_SHAPE: Mapping[str, Any] = {
    "node": _str,
    "carp": _list_of(_CARP),
    "vips": _strs,
    "sysctl": _str_map(_int),
    "demote": _opt(_int),
    "our_share": _opt(_int),
    "demote_reasons": _strs,
    "pfsync": _opt(_PFSYNC),
    "pf_enabled": _opt(_bool),
    "pf_states": _opt(_int),
    "pf_digest": _opt(_str),
    "pf_rules": _opt(_int),
    "pf_problems": _strs,
    "pf_notes": _strs,
    "relayd_running": _opt(_bool),
    "relays": _list_of(_RELAY),
    "errors": _str_map(_str),
    "version": _int,
}


@dataclass(frozen=True)
class Reads:
    """The output of the slow reads (None: not read, with the reason in `errors`)."""

    pf_rules: str | None = None
    pf_info: str | None = None
    pf_ifaces: str | None = None
    relayd_summary: str | None = None
    relayd_conf: str | None = None
    relayd_down: bool = False  # relayctl ran and could not reach relayd
    errors: Mapping[str, str] = field(default_factory=dict)


def _subnet(iface: Interface | None) -> str | None:
    for text in iface.inet if iface is not None else ():
        words = text.split()
        if len(words) >= 3 and words[1] == "netmask":
            try:
                mask = int(words[2], 16)
                net = ipaddress.ip_network(f"{words[0]}/{bin(mask).count('1')}", strict=False)
            except ValueError:
                continue
            return str(net)
    return None


def _carp_members(view: HostView) -> list[Interface]:
    devs = dict.fromkeys(i.carp.carpdev for i in view.carp if i.carp and i.carp.carpdev)
    return [m for m in (view.get(d) for d in devs) if m is not None]


def pf_findings(
    view: HostView, rules_text: str, ifaces: Mapping[str, bool]
) -> tuple[list[str], list[str]]:
    """(problems, notes): carp passed on every carp member, pfsync on the SYNC interface only
    and pfsync0 skipped, as pf decides (last match wins, unless quick)."""
    rules = parse_rules(rules_text)
    problems: list[str] = []
    notes: list[str] = []
    for member in _carp_members(view):
        for direction in ("in", "out"):
            rule = verdict(rules, member.name, member.groups, "carp", direction)
            if rule is not None and rule.action == "block":
                problems.append(f"carp {direction} on {member.name} blocked by `{rule.text}`")
        if not any(
            r.action == "pass"
            and r.proto == "carp"
            and r.may_apply(member.name, member.groups, "carp", "in")
            for r in rules
        ):
            problems.append(f"no `pass on {member.name} proto carp`")
    sync = next((i for i in view.interfaces if i.pfsync is not None), None)
    if sync is not None and sync.pfsync is not None:
        dev = view.get(sync.pfsync.syncdev)
        groups = dev.groups if dev is not None else ()
        for direction in ("in", "out"):
            rule = verdict(rules, sync.pfsync.syncdev, groups, "pfsync", direction)
            if rule is not None and rule.action == "block":
                problems.append(
                    f"pfsync {direction} on {sync.pfsync.syncdev} blocked by `{rule.text}`"
                )
        passing = [r for r in rules if r.action == "pass" and r.proto == "pfsync"]
        if not any(r.may_apply(sync.pfsync.syncdev, groups, "pfsync", "in") for r in passing):
            problems.append(f"no `pass on {sync.pfsync.syncdev} proto pfsync`")
        wide = [r.text for r in passing if r.interface is None or r.interface_not]
        if wide:
            notes.append(f"pfsync passed beyond the SYNC interface: `{wide[0]}`")
        if not ifaces.get(sync.name, False):
            notes.append(f"{sync.name} not skipped (`set skip on {sync.name}`)")
    return problems, notes


def build_report(
    node: str, view: HostView, config: Config, reads: Reads, our_share: int | None
) -> NodeReport:
    """One node's report from one read of the host and the slow reads."""
    errors = dict(reads.errors)
    carp = tuple(
        CarpEntry(i.name, n.vhid, n.state, i.carp.advbase, n.advskew, i.carp.carpdev)
        for i in view.carp
        if i.carp is not None
        for n in i.carp.nodes
    )
    vips = tuple(t.split()[0] for i in view.carp for t in i.inet if t.split())
    reasons = []
    for member in _carp_members(view):
        if member.status not in ("active", None):
            reasons.append(f"{member.name} {member.status}")
    for i in view.carp:
        if not i.up:
            reasons.append(f"{i.name} down")
    pfsync: dict[str, Any] | None = None
    sync = view.get(config.sync.interface if config.sync else "pfsync0")
    if sync is None:
        sync = next((i for i in view.interfaces if i.pfsync is not None), None)
    if sync is not None:
        dev = view.get(sync.pfsync.syncdev) if sync.pfsync else None
        pfsync = {
            "interface": sync.name,
            "up": sync.up and sync.running,
            "syncdev": sync.pfsync.syncdev if sync.pfsync else None,
            "syncdev_status": dev.status if dev is not None else None,
            "subnet": _subnet(dev),
        }
        if dev is not None and dev.status not in ("active", None):
            reasons.append(f"syncdev {dev.name} {dev.status}")
    pf: dict[str, Any] = {}
    try:
        if reads.pf_info is not None:
            info = parse_info(reads.pf_info)
            pf.update(pf_enabled=info.enabled, pf_states=info.states)
        if reads.pf_rules is not None:
            rules = parse_rules(reads.pf_rules)
            pf.update(pf_digest=rules_digest(rules), pf_rules=len(rules))
            ifaces = parse_ifaces(reads.pf_ifaces) if reads.pf_ifaces is not None else {}
            problems, notes = pf_findings(view, reads.pf_rules, ifaces)
            pf.update(pf_problems=tuple(problems), pf_notes=tuple(notes))
    except PfError as exc:
        errors["pfctl"] = f"cannot read pfctl output: {exc}"
    relays: list[RelayEntry] = []
    running: bool | None = None
    if reads.relayd_down:
        running = False
    elif reads.relayd_summary is not None:
        try:
            summary = parse_summary(reads.relayd_summary)
            running = True
            listen = parse_listen(reads.relayd_conf) if reads.relayd_conf is not None else {}
            for s in summary.services:
                if s.type not in ("relay", "redirect"):
                    continue
                hosts = [h for t in s.tables for h in t.hosts]
                relays.append(RelayEntry(s.name, listen.get(s.name, ()),
                                         sum(h.up for h in hosts), len(hosts)))  # fmt: skip
        except RelaydError as exc:
            errors["relayctl"] = f"cannot read relayctl output: {exc}"
    group = config.demote.group
    return NodeReport(
        node=node,
        carp=carp,
        vips=vips,
        sysctl=dict(view.sysctl),
        demote=view.group_demote.get(group),
        our_share=our_share,
        demote_reasons=tuple(reasons),
        pfsync=pfsync,
        relayd_running=running,
        relays=tuple(relays),
        errors=errors,
        **pf,
    )


# --- the checks ------------------------------------------------------------------------------


@dataclass
class _Check:
    name: str
    result: str = OK
    nodes: dict[str, str] = field(default_factory=dict)
    own_problem: bool = False  # something besides the missing peer is not ok

    def see(self, node: str, what: str, result: str = OK) -> None:
        self.nodes[node] = what
        if result != OK and what != NO_PEER:
            self.own_problem = True
        if _RANK[result] > _RANK[self.result]:
            self.result = result

    def doc(self) -> dict[str, Any]:
        fix = "" if self.result == OK else FIXES[self.name] if self.own_problem else NO_PEER_FIX
        return {"check": self.name, "result": self.result, "nodes": self.nodes, "fix": fix}


def _host_unread(check: _Check, r: NodeReport) -> bool:
    """A node whose host read failed: a warning with the reason, not a verdict."""
    if "ifconfig" in r.errors:
        check.see(r.node, r.errors["ifconfig"], WARNING)
        return True
    return False


def _pair(check: _Check, peer: NodeReport | None, reports: Sequence[NodeReport]) -> bool:
    """Marks a missing peer as a warning; whether both reports are there."""
    if peer is None:
        check.see("peer", NO_PEER, WARNING)
    return len(reports) == 2


def _carp_seen(r: NodeReport) -> str:
    return ", ".join(f"{c.interface} vhid {c.vhid} {c.state}" for c in r.carp) or "no carp vhid"


def check_one_master(reports: Sequence[NodeReport], peer: NodeReport | None) -> _Check:
    check = _Check("one_master")
    for r in reports:
        if not _host_unread(check, r):
            check.see(r.node, _carp_seen(r))
    if not _pair(check, peer, reports) or any("ifconfig" in r.errors for r in reports):
        return check
    for vhid in sorted({c.vhid for r in reports for c in r.carp}):
        masters = [
            r.node for r in reports for c in r.carp if c.vhid == vhid and c.state == "MASTER"
        ]
        if len(masters) != 1:
            what = "MASTER on " + " and ".join(masters) if masters else "no MASTER"
            for r in reports:
                check.see(r.node, f"{check.nodes[r.node]} (vhid {vhid}: {what})", FAILURE)
    return check


def check_same_vhids(reports: Sequence[NodeReport], peer: NodeReport | None) -> _Check:
    check = _Check("same_vhids")
    sets = {r.node: {(c.vhid, c.advbase) for c in r.carp} for r in reports}
    for r in reports:
        if _host_unread(check, r):
            continue
        shown = ", ".join(f"vhid {v} advbase {b}" for v, b in sorted(sets[r.node]))
        check.see(r.node, shown or "no carp vhid", OK if sets[r.node] else WARNING)
    unread = any("ifconfig" in r.errors for r in reports)
    if _pair(check, peer, reports) and not unread and len(set(map(frozenset, sets.values()))) > 1:
        for r in reports:
            other = sets[reports[1].node if r is reports[0] else reports[0].node]
            only = sorted(sets[r.node] - other)
            if only:
                shown = ", ".join(f"vhid {v} advbase {b}" for v, b in only)
                check.see(r.node, f"{check.nodes[r.node]} (only here: {shown})", FAILURE)
    return check


def check_preempt(reports: Sequence[NodeReport], peer: NodeReport | None, config: Config) -> _Check:
    check = _Check("preempt")
    for r in reports:
        s = r.sysctl
        seen = " ".join(f"{k.rsplit('.', 1)[1]}={s[k]}" for k in
                        ("net.inet.carp.allow", "net.inet.carp.preempt", "net.inet.carp.log")
                        if k in s)  # fmt: skip
        result = OK
        if s.get("net.inet.carp.allow") == 0:
            result = FAILURE
        if s.get("net.inet.carp.preempt") != 1:
            result = max(result, FAILURE if config.demote.method == "advskew" else WARNING,
                         key=_RANK.__getitem__)  # fmt: skip
        if s.get("net.inet.carp.log", 2) < 2 and result == OK:
            result = WARNING
        unread = r.errors.get("ifconfig", "net.inet.carp not read")
        check.see(r.node, seen or unread, result if s else WARNING)
    _pair(check, peer, reports)
    return check


def check_pfsync(reports: Sequence[NodeReport], peer: NodeReport | None) -> _Check:
    check = _Check("pfsync")
    for r in reports:
        p = r.pfsync
        if _host_unread(check, r):
            continue
        if p is None:
            check.see(r.node, "no pfsync interface", FAILURE)
            continue
        state = "up" if p["up"] else "DOWN"
        status = p["syncdev_status"] or "no status"
        seen = f"{p['interface']} {state} syncdev {p['syncdev'] or 'none'} ({status})"
        seen += f" subnet {p['subnet'] or 'unknown'}"
        bad = not p["up"] or not p["syncdev"] or p["syncdev_status"] not in ("active", None)
        check.see(r.node, seen, FAILURE if bad else OK)
    if _pair(check, peer, reports):
        subnets = {r.node: (r.pfsync or {}).get("subnet") for r in reports}
        if None not in subnets.values() and len(set(subnets.values())) > 1:
            for node in subnets:
                check.see(node, check.nodes[node] + " (SYNC subnets differ)", FAILURE)
    return check


def _pf_unread(check: _Check, r: NodeReport) -> bool:
    if r.pf_enabled is None and r.pf_digest is None:
        check.see(r.node, r.errors.get("pfctl", "pf not read"), WARNING)
        return True
    return False


def check_pf_rules(reports: Sequence[NodeReport], peer: NodeReport | None) -> _Check:
    check = _Check("pf_rules")
    for r in reports:
        if _pf_unread(check, r):
            continue
        parts = ["pf enabled" if r.pf_enabled else "pf DISABLED"]
        parts += list(r.pf_problems) + list(r.pf_notes)
        if not r.pf_problems and not r.pf_notes:
            parts.append("carp and pfsync passed as the handbook has them")
        result = FAILURE if (not r.pf_enabled or r.pf_problems) else (
            WARNING if r.pf_notes else OK)  # fmt: skip
        check.see(r.node, "; ".join(parts), result)
    _pair(check, peer, reports)
    return check


def check_rules_match(reports: Sequence[NodeReport], peer: NodeReport | None) -> _Check:
    check = _Check("rules_match")
    for r in reports:
        if r.pf_digest is None:
            check.see(r.node, r.errors.get("pfctl", "rules not read"), WARNING)
        else:
            check.see(r.node, f"{r.pf_rules} rules, digest {r.pf_digest}")
    if _pair(check, peer, reports):
        digests = {r.pf_digest for r in reports}
        if None not in digests and len(digests) > 1:
            for r in reports:
                check.see(r.node, check.nodes[r.node] + " (the rulesets differ)", FAILURE)
    return check


def check_states(reports: Sequence[NodeReport], peer: NodeReport | None, config: Config) -> _Check:
    check = _Check("states")
    for r in reports:
        if r.pf_states is None:
            check.see(r.node, r.errors.get("pfctl", "state count not read"), WARNING)
        else:
            check.see(r.node, f"{r.pf_states} states")
    if _pair(check, peer, reports):
        counts = [r.pf_states for r in reports]
        if None not in counts:
            a, b = (int(c or 0) for c in counts)
            tolerance = max(config.verify.states_tolerance * max(a, b), STATES_SLACK)
            if abs(a - b) > tolerance:
                for r in reports:
                    check.see(r.node, f"{r.pf_states} states (not close: not replicated?)",
                              FAILURE)  # fmt: skip
    return check


def check_demote_stuck(reports: Sequence[NodeReport], peer: NodeReport | None) -> _Check:
    check = _Check("demote_stuck")
    for r in reports:
        if r.demote is None:
            check.see(r.node, r.errors.get("ifconfig", "demote counter not read"), WARNING)
            continue
        share = "unknown" if r.our_share is None else str(r.our_share)
        seen = f"demote count {r.demote}, carpd-py's share {share}"
        unexplained = r.demote - (r.our_share or 0)
        if unexplained <= 0:
            check.see(r.node, seen)
        elif r.our_share is None:
            check.see(r.node, f"{seen}: cannot tell whose", WARNING)
        elif r.demote_reasons:
            check.see(r.node, f"{seen}, kernel reasons: {', '.join(r.demote_reasons)}", WARNING)
        else:
            check.see(r.node, f"{seen}, no kernel reason: stuck", FAILURE)
    _pair(check, peer, reports)
    return check


def check_relayd(reports: Sequence[NodeReport], peer: NodeReport | None, config: Config) -> _Check:
    check = _Check("relayd")
    used = any(u.method == "relayd" for u in config.upstream)
    running = [r.relayd_running for r in reports]
    if not used and not any(running) and None not in running:
        for r in reports:
            check.see(r.node, "relayd not running (not used)")
        return check
    for r in reports:
        if r.relayd_running is None:
            check.see(r.node, r.errors.get("relayctl", "relayctl not run"), WARNING)
            continue
        if not r.relayd_running:
            check.see(r.node, "relayd not running", FAILURE)
            continue
        parts, result = [], OK
        for relay in r.relays:
            where = ", ".join(relay.listen) or "unknown address"
            parts.append(f"{relay.name} on {where}: {relay.up}/{relay.hosts} hosts up")
            if relay.listen and not set(relay.listen) & set(r.vips):
                parts[-1] += " (not a carp VIP)"
                result = FAILURE
            if relay.up == 0:
                result = FAILURE
            elif relay.up < relay.hosts and result == OK:
                result = WARNING
        check.see(r.node, "; ".join(parts) or "relayd runs no relay", result)
    _pair(check, peer, reports)
    return check


def verify(local: NodeReport, peer: NodeReport | None, config: Config) -> dict[str, Any]:
    """The `carpctl verify --json` document for the pair (or the local node alone)."""
    reports: list[NodeReport] = [local]
    if peer is not None:
        if peer.node == local.node:  # two nodes with one name: tell them apart
            peer = NodeReport.from_json({**peer.to_json(), "node": f"{peer.node} (peer)"})
        reports.append(peer)
    checks = [
        check_one_master(reports, peer),
        check_same_vhids(reports, peer),
        check_preempt(reports, peer, config),
        check_pfsync(reports, peer),
        check_pf_rules(reports, peer),
        check_rules_match(reports, peer),
        check_states(reports, peer, config),
        check_demote_stuck(reports, peer),
        check_relayd(reports, peer, config),
    ]
    docs = [c.doc() for c in checks]
    worst = max((c.result for c in checks), key=_RANK.__getitem__, default=OK)
    return {"result": worst, "checks": docs}


def failed(document: Mapping[str, Any]) -> bool:
    return bool(document.get("result") == FAILURE)


def format_verify(document: Mapping[str, Any]) -> str:
    """The document for people: one block per check, the fix under what failed."""
    lines = []
    for check in document["checks"]:
        lines.append(f"{check['result'].upper():<8} {check['check']}")
        for node, seen in check["nodes"].items():
            lines.append(f"         {node}: {seen}")
        if check["result"] != OK:
            lines.append(f"         fix: {check['fix']}")
    lines.append(f"result: {document['result']}")
    return "\n".join(lines) + "\n"


def summary(document: Mapping[str, Any]) -> list[str]:
    """One line per check that is not ok, for `carpctl status` and the log."""
    return [
        f"{c['check']}: {c['result']}: " + "; ".join(f"{n}: {s}" for n, s in c["nodes"].items())
        for c in document["checks"]
        if c["result"] != OK
    ]
