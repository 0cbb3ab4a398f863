"""Read OpenBSD `pfctl -sr`, `pfctl -si` and `pfctl -sI -v` output. Pure functions, no I/O.

The formats, from sbin/pfctl:

- `pfctl -sr`: one rule per line, as `print_rule()` (pfctl_parser.c) prints it: the action
  (`pass`, `block drop`, `match`, `anchor "name"`), then ` in`/` out`, ` log[ (...)]`,
  ` quick`, ` on [! ]IFNAME`, ` inet[6]`, ` proto NAME`, then `print_fromto()`: ` all` when
  source and destination are both any without ports, else ` from X to Y`, then options
  (` flags S/SA`, ` label "..."`, ...). With -v pfctl.c's pfctl_print_rule_counters()
  follows each rule with indented `  [ Evaluations: ...]` lines; with -vv print_rule() also
  prefixes the rule with `@N `.
- `pfctl -si`: `print_status()`: `Status: Enabled for D days HH:MM:SS` padded to 44 columns,
  the debug level right-aligned in 15, a blank line, then `State Table  Total  Rate` and
  `  current entries  N` and `  half-open tcp  N`, then the counters (-v adds the Hostid
  and Checksum lines after the first).
- `pfctl -sI -v`: `print_iface()` (pfctl_table.c): one interface or group name per line,
  followed by ` (skip)` when `set skip on` names it.

`carpd_py.sim.pfctl_cmd` prints these formats for the simulated host.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = [
    "PfError",
    "PfInfo",
    "PfRule",
    "parse_ifaces",
    "parse_info",
    "parse_rules",
    "rules_digest",
    "verdict",
]


class PfError(ValueError):
    """pfctl output that could not be read; the message names the line."""


_ACTIONS = ("pass", "block", "match", "anchor")
# After `all`, these conditions still narrow what a rule matches: it may not match every packet.
_NARROWING = frozenset(
    ("user", "group", "icmp-type", "icmp6-type", "tos", "tagged", "!", "rtable",
     "received-on", "probability", "once", "os", "fragment")
)  # fmt: skip


@dataclass(frozen=True)
class PfRule:
    """One filter rule of `pfctl -sr`, with what the checks need to know about it."""

    text: str  # the line as printed, without the `@N ` prefix of -v
    action: str  # "pass", "block", "match", "anchor"
    direction: str | None  # "in", "out", or None for both
    quick: bool
    interface: str | None  # after `on`; None: every interface
    interface_not: bool  # `on ! IFNAME`
    proto: str | None  # `proto NAME`; None: every protocol
    all: bool  # matches every packet of that interface/protocol (`all`, nothing narrowing)

    def may_apply(self, interface: str, groups: Iterable[str], proto: str, direction: str) -> bool:
        """Whether the rule can match a packet of `proto` going `direction` on `interface`."""
        if self.direction is not None and self.direction != direction:
            return False
        if self.proto is not None and self.proto != proto:
            return False
        if self.interface is None:
            return True
        named = self.interface == interface or self.interface in set(groups)
        return named != self.interface_not


def _rule(line: str, number: int) -> PfRule:
    text = re.sub(r"^@[0-9]+ ", "", line.strip())
    words = text.split()
    if not words or words[0] not in _ACTIONS:
        raise PfError(f"line {number}: not a pf rule: {line.strip()!r}")
    i = 1
    if words[0] == "block" and i < len(words) and re.match(r"drop|return", words[i]):
        i += 1
    if words[0] == "anchor" and i < len(words) and words[i].startswith('"'):
        while i < len(words) and not words[i].endswith('"'):
            i += 1
        i += 1
    direction = None
    if i < len(words) and words[i] in ("in", "out"):
        direction = words[i]
        i += 1
    if i < len(words) and words[i] == "log":
        i += 1
        if i < len(words) and words[i].startswith("("):
            while i < len(words) and not words[i].endswith(")"):
                i += 1
            i += 1
    quick = i < len(words) and words[i] == "quick"
    i += quick
    interface, interface_not = None, False
    if i + 1 < len(words) and words[i] == "on":
        i += 1
        if words[i] == "!":
            interface_not = True
            i += 1
        if i >= len(words):
            raise PfError(f"line {number}: `on` without an interface: {text!r}")
        interface = words[i]
        i += 1
    proto = None
    rest = words[i:]
    if "proto" in rest:
        at = rest.index("proto")
        if at + 1 >= len(rest):
            raise PfError(f"line {number}: `proto` without a protocol: {text!r}")
        proto = rest[at + 1]
    everything = "all" in rest and not _NARROWING.intersection(rest[rest.index("all") :])
    return PfRule(text, words[0], direction, quick, interface, interface_not, proto, everything)


def parse_rules(text: str) -> tuple[PfRule, ...]:
    """The rules of `pfctl -sr` (or `-vsr`: `@N ` prefixes and statistics lines are skipped)."""
    rules: list[PfRule] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith((" ", "\t")):
            continue  # a blank line, or -v statistics under a rule
        rules.append(_rule(line, number))
    return tuple(rules)


def rules_digest(rules: Iterable[PfRule]) -> str:
    """A digest of the loaded ruleset: two nodes with the same rules have the same digest.

    Over the printed rules (not the rule numbers nor the counters), so that `pfctl -sr` and
    `pfctl -vsr` agree and counters that differ between the nodes do not matter.
    """
    h = hashlib.sha256()
    for rule in rules:
        h.update(rule.text.encode() + b"\n")
    return h.hexdigest()[:16]


def verdict(
    rules: Iterable[PfRule], interface: str, groups: Iterable[str], proto: str, direction: str
) -> PfRule | None:
    """The rule that decides a packet of `proto` on `interface` in `direction`, pf's way.

    pf evaluates every rule and the last match wins, unless a matching rule is `quick`. Only
    rules that surely match (`all`, nothing narrowing) are taken as deciding; `match` and
    `anchor` rules never decide. None: no rule surely decides (pf's default is pass).
    """
    decided: PfRule | None = None
    groups = tuple(groups)
    for rule in rules:
        if rule.action not in ("pass", "block") or not rule.all:
            continue
        if rule.may_apply(interface, groups, proto, direction):
            decided = rule
            if rule.quick:
                break
    return decided


@dataclass(frozen=True)
class PfInfo:
    """`pfctl -si`: whether pf is enabled, and the number of states."""

    enabled: bool
    states: int
    running_for: str | None = None  # "0 days 00:12:34"; None when pf never ran


_STATUS = re.compile(r"Status: (?P<state>Enabled|Disabled)(?: for (?P<since>[0-9]+ days [0-9:]+))?")
_ENTRIES = re.compile(r"  current entries +(?P<n>[0-9]+)")


def parse_info(text: str) -> PfInfo:
    """`print_status()`'s first line and the state table's `current entries`."""
    lines = text.splitlines()
    first = _STATUS.match(lines[0]) if lines else None
    if first is None:
        shown = lines[0] if lines else ""
        raise PfError(f"line 1: expected 'Status: Enabled|Disabled ...', not {shown!r}")
    for line in lines[1:]:
        m = _ENTRIES.match(line)
        if m:
            return PfInfo(first["state"] == "Enabled", int(m["n"]), first["since"])
    raise PfError("no '  current entries N' line in the State Table")


_IFACE = re.compile(r"(?P<name>[A-Za-z0-9_.-]+)(?P<skip> \(skip\))?")


def parse_ifaces(text: str) -> Mapping[str, bool]:
    """`pfctl -sI -v`: each interface and interface group, and whether pf skips it."""
    out: dict[str, bool] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith(("\t", " ")):
            continue  # -vv statistics
        m = _IFACE.fullmatch(line)
        if m is None:
            raise PfError(f"line {number}: not an interface name: {line!r}")
        out[m["name"]] = m["skip"] is not None
    return out
