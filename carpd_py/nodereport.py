"""One node's report for the handbook's checks: what it read, as a small JSON document.

Pure. `build_report` turns one read of the node (its HostView, the output of `pfctl -sr`,
`-si`, `-sI -v`, `relayctl show summary`, relayd.conf) into a `NodeReport` that carries the
derived facts (the rules' digest and findings, not the ruleset), so that it fits in one
message to the peer; `NodeReport.from_json` checks what a peer sent field by field.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .config import Config
from .model import HostView, Interface
from .pfparse import PfError, PfRule, parse_ifaces, parse_info, parse_rules, rules_digest, verdict
from .relayparse import RelaydError, parse_listen, parse_summary

REPORT_VERSION = 1


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


def blocked_by(
    rules: Sequence[PfRule], interface: str, groups: Sequence[str], proto: str, direction: str
) -> PfRule | None:
    """The rule that surely blocks `proto` on `interface`, or None.

    None too when a pass that may match (it names addresses or ports: whether it matches
    depends on the packet) comes after the deciding block, or is `quick`: such a ruleset may
    well pass the protocol, and verify does not guess.
    """
    decided = verdict(rules, interface, groups, proto, direction)
    if decided is None or decided.action != "block":
        return None
    at = rules.index(decided)
    for n, rule in enumerate(rules):
        maybe = rule.action == "pass" and not rule.all
        if maybe and (n > at or rule.quick) and rule.may_apply(interface, groups, proto, direction):
            return None
    return decided


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
            rule = blocked_by(rules, member.name, member.groups, "carp", direction)
            if rule is not None:
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
            rule = blocked_by(rules, sync.pfsync.syncdev, groups, "pfsync", direction)
            if rule is not None:
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
