"""The handbook's verification and troubleshooting checks, over the reports of the two nodes.

Pure. `verify(local, peer, config)` runs the checks over one or two `NodeReport`s (nodereport.py)
and returns the `carpctl verify --json` document:

    {"result": "ok" | "warning" | "failure",
     "checks": [{"check": NAME, "result": ..., "nodes": {NODE: what was seen}, "fix": "..."}]}

A check that cannot run (pfctl missing, no peer report) is a warning, never an ok.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import Config
from .nodereport import NodeReport

__all__ = ["CHECKS", "FAILURE", "NO_PEER", "OK", "WARNING", "NodeReport", "failed",
           "format_verify", "summary", "verify"]  # fmt: skip

OK, WARNING, FAILURE = "ok", "warning", "failure"
_RANK = {OK: 0, WARNING: 1, FAILURE: 2}
NO_PEER = "no peer report"
NO_PEER_FIX = (
    "run carpd-py on both nodes: the peer's report comes from the running daemon (the checks "
    "of this node alone passed)"
)
CHECKS = ("one_master", "same_vhids", "preempt", "pfsync", "pf_rules", "rules_match", "states",
          "demote_stuck", "relayd")  # fmt: skip
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
